package natsserver_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/buildsecrets"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/events"
	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/natslog"
	"github.com/slipway-ci/slipway/natslog/publish"
	"github.com/slipway-ci/slipway/natsserver"
)

// A client without a valid NATS credential of this server's key is
// refused at connect.
func TestClientWithoutValidCredentialRefused(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	other, err := credential.New(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	issue := func(i *credential.Issuer, kind credential.Kind, ttl time.Duration) string {
		tok, err := i.Agent(kind, "p", ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := issue(logtest.Credentials, credential.NATS, 0)
	expired := issue(logtest.Credentials, credential.NATS, time.Nanosecond)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := logtest.Credentials.Verify(credential.NATS, expired); err != nil || time.Now().After(deadline) {
			break
		}
	}
	forged := good[:len(good)-4] + "AAAA"
	serverOfOther, _ := other.Server(credential.NATS)
	for name, opts := range map[string][]nats.Option{
		"none":                  nil,
		"garbage token":         {nats.Token("let-me-in")},
		"forged":                {nats.Token(forged)},
		"another server's key":  {nats.Token(serverOfOther)},
		"expired":               {nats.Token(expired)},
		"Temporal credential":   {nats.Token(issue(logtest.Credentials, credential.Temporal, 0))},
		"registry as password":  {nats.UserInfo("p", issue(logtest.Credentials, credential.Registry, 0))},
		"user without password": {nats.UserInfo("slipway-server", "")},
	} {
		nc, err := nats.Connect(s.PlainURL(), append(opts, nats.NoReconnect())...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		} else if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: %v, want an authorization error", name, err)
		}
	}
	for name, opt := range map[string]nats.Option{"token": nats.Token(good), "password": nats.UserInfo("any", good)} {
		nc, err := nats.Connect(s.PlainURL(), opt)
		if err != nil {
			t.Errorf("a valid agent credential as %s: %v", name, err)
			continue
		}
		nc.Close()
	}
}

// agentConn connects as project's agent, as the agent does, and returns
// the connection and the asynchronous errors the server sends it.
func agentConn(t *testing.T, s *logtest.Server, project string) (*nats.Conn, <-chan error) {
	t.Helper()
	tok, err := logtest.Credentials.Agent(credential.NATS, project, 0)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	nc, err := nats.Connect(s.PlainURL(), nats.Token(tok), nats.CustomInboxPrefix(builder.NATSInboxPrefix(project)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s's agent: %v", project, err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// serverConn connects with the server's credential.
func serverConn(t *testing.T, s *logtest.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// violation waits for the server to report a permissions violation to
// the agent's connection.
func violation(t *testing.T, what string, errs <-chan error) {
	t.Helper()
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("%s: error %v, want a permissions violation", what, err)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("%s: allowed (no permissions violation)", what)
	}
}

// The agent of project p cannot listen to others' inboxes or to the
// control plane's subjects.
func TestAgentCannotSubscribeElsewhere(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	agent, errs := agentConn(t, s, "p")
	srv := serverConn(t, s)
	for _, subj := range []string{"_INBOX.>", "slipway.>", natslog.StreamSubjects, "slipway.secrets.q", builder.NATSInboxPrefix("q") + ".>", ">", "$JS.API.>"} {
		got := make(chan *nats.Msg, 1)
		sub, err := agent.ChanSubscribe(subj, got)
		if err != nil {
			t.Fatalf("subscribe %s: %v", subj, err)
		}
		violation(t, "subscribe "+subj, errs)
		probe := strings.NewReplacer(">", "x", "*", "x").Replace(subj)
		if err := srv.Publish(probe, []byte("for someone else")); err != nil {
			t.Fatal(err)
		}
		_ = srv.Flush()
		select {
		case m := <-got:
			t.Errorf("subscribed to %s, the agent of p got %s", subj, m.Subject)
		case <-time.After(200 * time.Millisecond):
		}
		_ = sub.Unsubscribe()
	}
}

// The agent of project p cannot publish into q's log, ask for q's
// secrets, or use JetStream's API (read, purge or delete the stream).
func TestAgentCannotTouchOtherProjectsOrTheStream(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	srv := serverConn(t, s)
	js, _ := jetstream.New(srv)
	if _, err := js.Publish(t.Context(), natslog.Subject("q", "d1"), []byte(logtest.LineJSON("d1", 1))); err != nil {
		t.Fatal(err)
	}
	asked := make(chan struct{}, 1)
	if _, err := srv.Subscribe(buildsecrets.Subject("q"), func(m *nats.Msg) {
		asked <- struct{}{}
		_ = m.Respond([]byte(`{"secrets":[{"name":"k","value":"cS1zZWNyZXQ="}]}`))
	}); err != nil {
		t.Fatal(err)
	}
	_ = srv.Flush()

	agent, errs := agentConn(t, s, "p")
	ajs, _ := jetstream.New(agent)
	if err := agent.Publish(natslog.Subject("q", "d1"), []byte(logtest.LineJSON("d1", 2))); err != nil {
		t.Fatal(err)
	}
	violation(t, "publish into q's log", errs)
	if _, err := agent.Request(buildsecrets.Subject("q"), []byte(`{}`), time.Second); err == nil {
		t.Error("the agent of p got an answer on q's secrets subject")
	}
	violation(t, "ask for q's secrets", errs)
	select {
	case <-asked:
		t.Error("q's secrets server heard the agent of p")
	default:
	}
	for _, subj := range []string{"$JS.API.STREAM.PURGE." + natslog.StreamName, "$JS.API.STREAM.DELETE." + natslog.StreamName, "$JS.API.INFO"} {
		if _, err := agent.Request(subj, nil, time.Second); err == nil {
			t.Errorf("%s: the agent of p got an answer", subj)
		}
		violation(t, subj, errs)
	}
	if _, err := ajs.Stream(t.Context(), natslog.StreamName); err == nil {
		t.Error("the agent of p looked up the stream through JetStream's API")
	}
	st, err := js.Stream(t.Context(), natslog.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context(), jetstream.WithSubjectFilter(natslog.Subject("q", "d1")))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[natslog.Subject("q", "d1")]; n != 1 {
		t.Errorf("q's d1 has %d messages after the agent of p tried, want 1 (unpurged, nothing forged)", n)
	}
}

// The agent of project p publishes its log lines (with acks, deduplicated
// by Nats-Msg-Id, continuing the numbering the server tells it), announces
// progress and gets its build secrets: everything an agent does.
func TestAgentDoesItsOwnWork(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := logtest.NewStore(t, "d1")
	a := logtest.StartArchiver(t, s.URL(), store)
	tok, _ := logtest.Credentials.Agent(credential.NATS, logtest.Project, 0)
	opts := []nats.Option{nats.Token(tok), nats.CustomInboxPrefix(builder.NATSInboxPrefix(logtest.Project))}
	for round := range 2 {
		p := logtest.NewPublisher(t, publish.Config{URL: s.PlainURL(), Options: opts, Deployment: "d1"})
		if got, want := p.LastLine(), int64(100*round); got != want {
			t.Fatalf("round %d: publisher starts after line %d, want %d", round, got, want)
		}
		for i := range 100 {
			p.Line("stdout", "line "+string(rune('a'+i%26)))
		}
		logtest.ClosePublisher(t, p)
	}
	logtest.WaitFor(t, a, "d1", 200)

	agent, errs := agentConn(t, s, logtest.Project)
	ajs, _ := jetstream.New(agent)
	for i, dup := range []bool{false, true} {
		m := &nats.Msg{Subject: natslog.Subject(logtest.Project, "d1"), Data: []byte(logtest.LineJSON("d1", 201)),
			Header: nats.Header{jetstream.MsgIDHeader: {natslog.MsgID("d1", 201, 201)}}}
		if ack, err := ajs.PublishMsg(t.Context(), m); err != nil || ack.Duplicate != dup {
			t.Errorf("publishing line 201 as the agent, time %d: ack %+v, %v; want duplicate %v", i+1, ack, err, dup)
		}
	}
	if got := logtest.SubjectCount(t, s.URL(), "d1"); got != 201 {
		t.Errorf("d1 has %d lines in the stream, want 201", got)
	}

	srv := serverConn(t, s)
	heard, err := events.Watch(t.Context(), srv, logtest.Project, "d1")
	if err != nil {
		t.Fatal(err)
	}
	_ = srv.Flush()
	if err := events.Announce(agent, logtest.Project, "d1", slipway.StatusBuilding); err != nil {
		t.Fatal(err)
	}
	select {
	case <-heard:
	case <-time.After(3 * time.Second):
		t.Error("the agent's announcement was not heard")
	}
	secret := []byte("its-own-secret")
	if _, err := srv.Subscribe(buildsecrets.Subject(logtest.Project), func(m *nats.Msg) {
		b, _ := json.Marshal(map[string]any{"secrets": []slipway.SecretValue{{Name: "k", Value: secret}}})
		_ = m.Respond(b)
	}); err != nil {
		t.Fatal(err)
	}
	_ = srv.Flush()
	vals, err := buildsecrets.Fetch(t.Context(), s.PlainURL(), logtest.Project, "d1", "t", opts...)
	if err != nil || len(vals) != 1 || !bytes.Equal(vals[0].Value, secret) {
		t.Errorf("Fetch as the agent = %+v, %v", vals, err)
	}
	select {
	case err := <-errs:
		t.Errorf("the agent's own work: %v", err)
	default:
	}
}
