package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// The NATS attacks: a local account (or a build that escaped its
// container, with its project's credential) on the control plane's NATS.
// Each takes the NATS URL and a credential ("-" for none) first.
func init() {
	// nats-subscribe URL CRED SUBJECT: listen to SUBJECT for a few
	// seconds (replies with build secrets travel on inboxes).
	attacks["nats-subscribe"] = func(args []string) Result {
		if len(args) != 3 {
			return open("usage: nats-subscribe URL CRED SUBJECT")
		}
		c, r, ok := natsConnect(args[0], args[1])
		if !ok {
			return r
		}
		defer c.nc.Close()
		msgs := make(chan *nats.Msg, 256)
		if _, err := c.nc.ChanSubscribe(args[2], msgs); err != nil {
			return blocked("subscribe %s: %v", args[2], err)
		}
		var seen []string
		deadline := time.After(3 * time.Second)
		for {
			select {
			case err := <-c.errs:
				return Result{Blocked: errors.Is(err, nats.ErrPermissionViolation), Detail: fmt.Sprintf("subscribe %s: %v", args[2], err), Seen: seen}
			case m := <-msgs:
				seen = append(seen, m.Subject+" "+string(m.Data))
			case <-deadline:
				return Result{Detail: fmt.Sprintf("subscribed to %s as %s, heard %d messages", args[2], c.who, len(seen)), Seen: seen}
			}
		}
	}
	// nats-publish URL CRED SUBJECT MSGID DATA: publish DATA on SUBJECT
	// (a log subject: into the stream) with a Nats-Msg-Id, waiting for
	// the stream's ack.
	attacks["nats-publish"] = func(args []string) Result {
		if len(args) != 5 {
			return open("usage: nats-publish URL CRED SUBJECT MSGID DATA")
		}
		m := &nats.Msg{Subject: args[2], Data: []byte(args[4]), Header: nats.Header{"Nats-Msg-Id": {args[3]}}}
		return natsAsk(args[0], args[1], m)
	}
	// nats-request URL CRED SUBJECT DATA: send a request (ask for build
	// secrets, call JetStream's API) and print the reply.
	attacks["nats-request"] = func(args []string) Result {
		if len(args) != 4 {
			return open("usage: nats-request URL CRED SUBJECT DATA")
		}
		return natsAsk(args[0], args[1], &nats.Msg{Subject: args[2], Data: []byte(args[3])})
	}
}

// natsConn is an attacker's connection and the errors the server sent it.
type natsConn struct {
	nc   *nats.Conn
	errs chan error
	who  string
}

// natsConnect connects with cred ("-": none), or returns the Result of a
// refused connection (blocked) and false.
func natsConnect(url, cred string) (*natsConn, Result, bool) {
	c := &natsConn{errs: make(chan error, 16), who: "nobody without a credential"}
	opts := []nats.Option{nats.NoReconnect(), nats.Timeout(5 * time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case c.errs <- err:
			default:
			}
		})}
	if cred != "-" {
		// Replies come on the inbox the credential's project may use,
		// as its agent's do: only the request itself can be refused.
		project := credProject(cred)
		opts = append(opts, nats.Token(cred), nats.CustomInboxPrefix("_INBOX_AGENT."+project))
		c.who = project + "'s agent credential"
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization") {
			return nil, blocked("connect as %s: %v", c.who, err), false
		}
		return nil, open("connect as %s: %v (not an authorization error)", c.who, err), false
	}
	c.nc = nc
	return c, Result{}, true
}

// natsAsk sends m as a request and reports whether the server refused it
// (a permissions violation, no reply): any reply, even a refusal from the
// service behind the subject, means the request got through NATS.
func natsAsk(url, cred string, m *nats.Msg) Result {
	c, r, ok := natsConnect(url, cred)
	if !ok {
		return r
	}
	defer c.nc.Close()
	rep, err := c.nc.RequestMsg(m, 3*time.Second)
	if err == nil {
		return Result{Detail: fmt.Sprintf("%s: answered %q", m.Subject, rep.Data), Seen: []string{string(rep.Data)}, Wrote: strings.HasPrefix(m.Subject, "slipway.logs.")}
	}
	// The refusal must be of the request itself (not, say, of the
	// inbox's subscription).
	timeout := time.After(2 * time.Second)
	for {
		select {
		case verr := <-c.errs:
			if errors.Is(verr, nats.ErrPermissionViolation) && strings.Contains(verr.Error(), `Publish to "`+m.Subject+`"`) {
				return blocked("%s as %s: %v", m.Subject, c.who, verr)
			}
			return open("%s as %s: no answer (%v), and %v", m.Subject, c.who, err, verr)
		case <-timeout:
			return open("%s as %s: no answer (%v) but no permissions violation either", m.Subject, c.who, err)
		}
	}
}

// credProject reads the project out of a Slipway credential
// ("slwc1.<base64 JSON claims>.<MAC>"): an attacker can, it is not
// encrypted.
func credProject(cred string) string {
	parts := strings.Split(cred, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Project string `json:"p"`
	}
	_ = json.Unmarshal(b, &c)
	return c.Project
}
