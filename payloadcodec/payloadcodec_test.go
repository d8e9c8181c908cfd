package payloadcodec

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"testing"

	"go.temporal.io/sdk/converter"
)

type secretInput struct {
	Repo  string `json:"repo"`
	Token string `json:"token"`
}

func newCodec(t *testing.T) (*Codec, string) {
	t.Helper()
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(key)
	c, err := ParseKey(b64)
	if err != nil {
		t.Fatal(err)
	}
	return c, b64
}

// What the data converter writes holds nothing of the value in clear, and
// reads back as the value; a payload written before the codec (plain
// JSON) still reads.
func TestEncryptsAndReadsOldPayloads(t *testing.T) {
	c, _ := newCodec(t)
	in := secretInput{Repo: "https://user:hunter2@example.com/r.git", Token: "tok-s3cret"}
	p, err := c.DataConverter().ToPayload(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"hunter2", "tok-s3cret", "repo", "json/plain"} {
		if bytes.Contains(p.Data, []byte(s)) || bytes.Contains([]byte(p.String()), []byte(s)) {
			t.Errorf("encrypted payload holds %q in clear: %s", s, p)
		}
	}
	var out secretInput
	if err := c.DataConverter().FromPayload(p, &out); err != nil || out != in {
		t.Errorf("FromPayload = %+v, %v; want %+v", out, err, in)
	}

	old, err := converter.GetDefaultDataConverter().ToPayload(in)
	if err != nil {
		t.Fatal(err)
	}
	out = secretInput{}
	if err := c.DataConverter().FromPayload(old, &out); err != nil || out != in {
		t.Errorf("FromPayload(unencrypted) = %+v, %v; want %+v", out, err, in)
	}
}

// A codec of the same key reads what one wrote; another key cannot.
func TestKeys(t *testing.T) {
	c1, key := newCodec(t)
	c2, err := ParseKey(key + "\n")
	if err != nil {
		t.Fatal(err)
	}
	p, err := c1.DataConverter().ToPayload("secret")
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := c2.DataConverter().FromPayload(p, &s); err != nil || s != "secret" {
		t.Errorf("same key: FromPayload = %q, %v", s, err)
	}
	other, _ := newCodec(t)
	if err := other.DataConverter().FromPayload(p, &s); err == nil {
		t.Error("another key decrypted the payload")
	}
	if _, err := ParseKey("c2hvcnQ="); err == nil {
		t.Error("ParseKey accepted a 5-byte key")
	}
}
