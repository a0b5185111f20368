package appns

import "testing"

func TestNSSwitchConf(t *testing.T) {
	for _, tc := range []struct{ name, host, want string }{
		{"resolve and mdns", "passwd: files\nhosts:  files mdns4_minimal [NOTFOUND=return] resolve [!UNAVAIL=return] myhostname dns\nnetworks: files\n",
			"passwd: files\nhosts: files dns\nnetworks: files\n"},
		{"already files dns", "hosts:          files dns\n", "hosts: files dns\n"},
		{"no hosts line", "# nothing\npasswd: files", "# nothing\npasswd: files\nhosts: files dns\n"},
		{"empty", "", "hosts: files dns\n"},
		{"two hosts lines", "hosts: nis\nhosts: resolve\n", "hosts: files dns\n"},
		{"commented out", "#hosts: resolve\n", "#hosts: resolve\nhosts: files dns\n"},
		{"space before colon", "hosts : resolve\n", "hosts: files dns\n"},
		{"hostsfoo is another database", "hostsfoo: x\n", "hostsfoo: x\nhosts: files dns\n"},
	} {
		if got := string(NSSwitchConf([]byte(tc.host))); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
