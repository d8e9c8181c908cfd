// Package payloadcodec encrypts the payloads Slipway's Temporal clients
// write (workflow and activity inputs and results, signals, failure
// messages) with AES-256-GCM, so that a workflow history read straight
// from Temporal holds no repository credential, token or build secret in
// clear. It is Temporal's encryption-codec pattern: a
// converter.PayloadCodec under the default data converter.
//
// The server, its workers and every agent use the same key: the server's
// is a file in its data directory (KeyFile), an agent's comes in its
// configuration (builder.AgentCredentials.PayloadKey). A payload without
// this codec's encoding (recorded before it, or a nil) passes through
// decoding unchanged, so histories recorded before still replay.
//
// It must not know what the payloads are.
package payloadcodec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
)

// Encoding is the metadata "encoding" of an encrypted payload.
const Encoding = "binary/slipway-aes256gcm"

// KeyFile is the key's file name in the server's data directory.
const KeyFile = "payload.key"

// KeySize is the size of a key in bytes (AES-256).
const KeySize = 32

// Codec encrypts and decrypts payloads with one key.
type Codec struct {
	aead cipher.AEAD
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New returns a Codec with key (KeySize bytes).
func New(key []byte) (*Codec, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("payload key: %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("payload key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("payload key: %w", err)
	}
	return &Codec{aead: aead}, nil
}

// ParseKey decodes a base64 key (as in a key file or an agent's
// configuration) and returns a Codec with it.
func ParseKey(b64 string) (*Codec, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, fmt.Errorf("payload key: not base64: %w", err)
	}
	return New(key)
}

// Encode encrypts each payload whole (data and metadata) into one of
// Encoding.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := p.Marshal()
		if err != nil {
			return nil, fmt.Errorf("encrypt payload: %w", err)
		}
		nonce := make([]byte, c.aead.NonceSize(), c.aead.NonceSize()+len(plain)+c.aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("encrypt payload: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{converter.MetadataEncoding: []byte(Encoding)},
			Data:     c.aead.Seal(nonce, nonce, plain, nil),
		}
	}
	return out, nil
}

// Decode decrypts the payloads of Encoding and passes the others through.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		n := c.aead.NonceSize()
		if len(p.Data) < n {
			return nil, errors.New("decrypt payload: too short")
		}
		plain, err := c.aead.Open(nil, p.Data[:n], p.Data[n:], nil)
		if err != nil {
			return nil, fmt.Errorf("decrypt payload (another payload key?): %w", err)
		}
		var dp commonpb.Payload
		if err := dp.Unmarshal(plain); err != nil {
			return nil, fmt.Errorf("decrypt payload: %w", err)
		}
		out[i] = &dp
	}
	return out, nil
}

// DataConverter is the default data converter with c under it.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter moves failures' messages and stack traces into an
// encoded payload, so that the data converter encrypts them too (an error
// message may quote a URL with its credentials).
func FailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter: dc, EncodeCommonAttributes: true,
	})
}
