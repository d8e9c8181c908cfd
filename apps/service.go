package apps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// service is the podman API service (`podman system service`) the
// Runtime keeps running: the start of a stopped app goes through it, so
// no request waits for the podman CLI's start-up. It is restarted when it
// is found gone.
type service struct {
	r    *Runtime
	sock string
	http *http.Client

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd exited
	stderr *tailBuffer
	closed bool
}

// apiBase is the libpod API's path prefix; podman 4.x serves any 4.x.
const apiBase = "http://podman/v4.0.0/libpod"

func newService(r *Runtime) *service {
	s := &service{r: r, sock: filepath.Join(r.runRoot(), "podman.sock")}
	s.http = &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", s.sock)
		},
		MaxIdleConns:    8,
		IdleConnTimeout: time.Minute,
	}}
	return s
}

// ensure starts the service unless it runs, and waits until it answers.
func (s *service) ensure(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("apps: the runtime is closed")
	}
	if s.cmd != nil {
		select {
		case <-s.done:
			s.r.cfg.Logger.Warn("apps: the podman API service exited; starting it again", "output", s.stderr.String())
			s.cmd = nil
		default:
			return nil
		}
	}
	_ = os.Remove(s.sock)
	cmd := s.r.podmanCommand(context.Background(), "system", "service", "--time=0", "unix://"+s.sock)
	s.stderr = &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = s.stderr, s.stderr
	// Its own process group: a ^C to the server is the server's to handle.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("apps: start the podman API service: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		if err := s.ping(ctx); err == nil {
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("apps: the podman API service exited at start: %s", s.stderr.String())
		case <-ctx.Done():
			return fmt.Errorf("apps: the podman API service did not answer on %s: %w", s.sock, ctx.Err())
		case <-time.After(wait):
		}
	}
}

func (s *service) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiBase+"/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping: %s", resp.Status)
	}
	return nil
}

// close stops the service and waits for it; the containers keep running.
// Safe to call twice.
func (s *service) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
	s.http.CloseIdleConnections()
	_ = os.Remove(s.sock)
}

// apiError is the libpod API's error body.
type apiError struct {
	Cause    string `json:"cause"`
	Message  string `json:"message"`
	Response int    `json:"response"`
}

// call sends one API request, (re)starting the service if it is not
// there, and decodes a JSON answer into out (if not nil). A 404 is
// ErrNotFound; a 304 (already started or stopped) is no error.
func (s *service) call(ctx context.Context, method, path string, query url.Values, out any) error {
	u := apiBase + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	resp, err := s.do(ctx, method, u)
	if err != nil {
		return fmt.Errorf("podman API %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("podman API %s %s: %w", method, path, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return ErrNotFound
	case resp.StatusCode == http.StatusNotModified:
		return nil
	case resp.StatusCode >= 300:
		var e apiError
		if json.Unmarshal(body, &e) == nil && e.Message != "" {
			return fmt.Errorf("podman API %s %s: %s", method, path, e.Message)
		}
		return fmt.Errorf("podman API %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(body))
	}
	if out != nil && len(body) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("podman API %s %s: %w", method, path, err)
		}
	}
	return nil
}

// do sends a request without a body. When the service is not there (its
// socket refuses or is gone: it died), it is started again and the
// request sent once more.
func (s *service) do(ctx context.Context, method, u string) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		if err := s.ensure(ctx); err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := s.http.Do(req)
		if err == nil || attempt > 0 {
			return resp, err
		}
		// Did it die (a refused or reset connection)? Wait a moment for
		// its exit to be seen, so that ensure restarts it. Every request
		// of this package may be sent twice: a start, stop or remove done
		// already answers 304 or 404.
		s.mu.Lock()
		done := s.done
		s.mu.Unlock()
		select {
		case <-done:
			s.http.CloseIdleConnections()
		case <-time.After(time.Second):
			return nil, err
		case <-ctx.Done():
			return nil, err
		}
	}
}

// container is what the API's inspect says of a container (the parts
// this package reads).
type container struct {
	ID    string `json:"Id"`
	Name  string `json:"Name"`
	Image string `json:"ImageName"`
	State struct {
		Status    string `json:"Status"`
		Running   bool   `json:"Running"`
		Pid       int    `json:"Pid"`
		ConmonPid int    `json:"ConmonPid"`
		ExitCode  int    `json:"ExitCode"`
		OOMKilled bool   `json:"OOMKilled"`
	} `json:"State"`
	Config struct {
		Labels map[string]string `json:"Labels"`
		Env    []string          `json:"Env"`
	} `json:"Config"`
	HostConfig struct {
		PortBindings map[string][]struct {
			HostIP   string `json:"HostIp"`
			HostPort string `json:"HostPort"`
		} `json:"PortBindings"`
		LogConfig struct {
			Type string `json:"Type"`
			Path string `json:"Path"`
		} `json:"LogConfig"`
	} `json:"HostConfig"`
}

func (s *service) inspect(ctx context.Context, name string) (*container, error) {
	var c container
	if err := s.call(ctx, http.MethodGet, "/containers/"+url.PathEscape(name)+"/json", nil, &c); err != nil {
		return nil, err
	}
	c.Name = strings.TrimPrefix(c.Name, "/")
	return &c, nil
}

// listed is one container of the API's list.
type listed struct {
	ID     string            `json:"Id"`
	Names  []string          `json:"Names"`
	Image  string            `json:"Image"`
	Labels map[string]string `json:"Labels"`
	Ports  []struct {
		HostIP        string `json:"host_ip"`
		ContainerPort int    `json:"container_port"`
		HostPort      int    `json:"host_port"`
	} `json:"Ports"`
}

// list returns every container (running or not) carrying label.
func (s *service) list(ctx context.Context, label string) ([]listed, error) {
	filters, _ := json.Marshal(map[string][]string{"label": {label}})
	var cs []listed
	err := s.call(ctx, http.MethodGet, "/containers/json", url.Values{"all": {"true"}, "filters": {string(filters)}}, &cs)
	return cs, err
}

func (s *service) start(ctx context.Context, name string) error {
	return s.call(ctx, http.MethodPost, "/containers/"+url.PathEscape(name)+"/start", nil, nil)
}

// init creates the container in the OCI runtime without starting it.
func (s *service) init(ctx context.Context, name string) error {
	return s.call(ctx, http.MethodPost, "/containers/"+url.PathEscape(name)+"/init", nil, nil)
}

func (s *service) stop(ctx context.Context, name string, timeout time.Duration) error {
	q := url.Values{"timeout": {fmt.Sprint(int(timeout.Round(time.Second) / time.Second))}}
	return s.call(ctx, http.MethodPost, "/containers/"+url.PathEscape(name)+"/stop", q, nil)
}

func (s *service) remove(ctx context.Context, name string) error {
	err := s.call(ctx, http.MethodDelete, "/containers/"+url.PathEscape(name), url.Values{"force": {"true"}, "v": {"true"}}, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
