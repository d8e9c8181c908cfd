// Command appecho is the app the e2e tests deploy when busybox httpd is
// not enough: it serves on $PORT, answers GET / with its -say text (which
// also names its process in `ps`, so that a test can tell whether any of
// it is left), echoes every WebSocket message sent to /ws, and streams a
// line every 250 ms for as long as /stream?for=DURATION asks.
//
// It is compiled statically by the tests and copied into an image made
// FROM the busybox base image: no registry is needed.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

func main() {
	say := flag.String("say", "hello", "what GET / answers")
	flag.Parse()
	port := os.Getenv("PORT")
	if port == "" {
		port = "8000"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, *say)
	})
	mux.HandleFunc("/ws", echo)
	mux.HandleFunc("GET /stream", stream)
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("appecho %s listening on :%s", *say, port)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// echo sends every message of a WebSocket back until the client closes it.
func echo(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, msg); err != nil {
			return
		}
	}
}

// stream writes a line every 250 ms, flushed, until the duration in the
// query's "for" has passed.
func stream(w http.ResponseWriter, r *http.Request) {
	d, err := time.ParseDuration(r.URL.Query().Get("for"))
	if err != nil {
		http.Error(w, "stream?for=DURATION", http.StatusBadRequest)
		return
	}
	rc := http.NewResponseController(w)
	for end := time.Now().Add(d); time.Now().Before(end); {
		fmt.Fprintf(w, "%s\n", time.Now().Format(time.RFC3339Nano))
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}
