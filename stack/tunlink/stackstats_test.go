package tunlink

import (
	"fmt"
	"reflect"
	"strings"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// dumpStats writes the non-zero counters of a gVisor stats struct, for
// failure messages: which layer dropped the packets.
func dumpStats(v reflect.Value, prefix string, out *strings.Builder) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		if c, ok := v.Interface().(*tcpip.StatCounter); ok {
			if c.Value() != 0 {
				fmt.Fprintf(out, "%s=%d ", prefix, c.Value())
			}
			return
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < v.NumField(); i++ {
		if !v.Type().Field(i).IsExported() {
			continue
		}
		dumpStats(v.Field(i), prefix+"."+v.Type().Field(i).Name, out)
	}
}
