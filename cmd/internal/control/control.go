// Package control serves a tungate instance's HTTP API, on the --metrics
// TCP address and on the control unix socket alike:
//
//	GET  /metrics          Prometheus text exposition (tungate_*, Go runtime, process)
//	GET  /flows            the live flow table, a JSON array of flows.Info
//	POST /flows/ID/close   end flow ID (TCP: a reset to both sides)
//
// It owns the listeners and the goroutines that serve them. It also says
// which destinations would reach its TCP listener (Reaches), so that the
// forwarder can refuse them: the API must never answer from the tunnel.
package control

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tungate/tungate/forwarder/flows"
)

// Server serves the API on any number of listeners until Close.
type Server struct {
	http *http.Server
	log  *slog.Logger
	wg   sync.WaitGroup
	// src is filled in by SetSources once the gateway runs; until then
	// the API answers 503.
	mu       sync.RWMutex
	src      *Sources
	registry *prometheus.Registry
}

// New returns a Server that answers nothing until SetSources. log may be
// nil.
func New(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /flows", s.flows)
	mux.HandleFunc("POST /flows/{id}/close", s.closeFlow)
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

// SetSources sets what the API reports. It is called once, when the
// gateway is up.
func (s *Server) SetSources(src *Sources) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{src}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.mu.Lock()
	s.src = src
	s.registry = reg
	s.mu.Unlock()
}

// Serve serves ln on a goroutine of the Server's until Close, which
// closes ln.
func (s *Server) Serve(ln net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("control API stopped", "addr", ln.Addr(), "err", err)
		}
	}()
}

// Close closes every listener and connection (a unix socket's file goes
// with its listener) and waits for the serving goroutines. It is
// idempotent.
func (s *Server) Close() error {
	err := s.http.Close()
	s.wg.Wait()
	return err
}

func (s *Server) sources() (*Sources, *prometheus.Registry) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.src, s.registry
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	_, reg := s.sources()
	if reg == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}).ServeHTTP(w, r)
}

func (s *Server) flows(w http.ResponseWriter, r *http.Request) {
	src, _ := s.sources()
	if src == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(src.Flows.Snapshot())
}

func (s *Server) closeFlow(w http.ResponseWriter, r *http.Request) {
	src, _ := s.sources()
	if src == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "flow ID: want a number", http.StatusBadRequest)
		return
	}
	if err := src.Flows.Kill(id); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, flows.ErrNoFlow) {
			code = http.StatusNotFound
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
