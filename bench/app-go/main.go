// Command notes is a small HTTP service that keeps notes in memory. It is
// the Slipway benchmark's second sample app (bench/README.md): a Go
// module with a few dependencies, built into a small runtime image.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type ctxKey struct{}

func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

func main() {
	listen := flag.String("listen", ":8080", "address to listen on")
	healthcheck := flag.Bool("healthcheck", false, "check the health of the service at -listen and exit (for the image's HEALTHCHECK)")
	flag.Parse()
	if *healthcheck {
		if err := checkHealth(*listen); err != nil {
			fmt.Fprintln(os.Stderr, "notes:", err)
			os.Exit(1)
		}
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, *listen, log); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}

// serve answers on addr until ctx ends, then drains for up to 10 s.
func serve(ctx context.Context, addr string, log *slog.Logger) error {
	srv := &http.Server{
		Addr:              addr,
		Handler:           newHandler(newStore(time.Now), log),
		ReadHeaderTimeout: 5 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("listening", "addr", addr, "version", version, "revision", revision)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// checkHealth asks the service listening on addr for /healthz.
func checkHealth(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz answered %s", resp.Status)
	}
	return nil
}
