package redisstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/edgeworks/edge/resume/redistest"
)

// backend is a Redis for the tests: a single server or a cluster.
type backend struct {
	name string
	// start starts the Redis for t and returns a function that makes
	// clients of it (one per node), closed in t.Cleanup.
	start func(t *testing.T) (newClient func() redis.UniversalClient)
}

var backends = []backend{
	{"single", func(t *testing.T) func() redis.UniversalClient {
		srv := redistest.Start(t)
		return func() redis.UniversalClient { return client(t, srv.Addr) }
	}},
	{"cluster", func(t *testing.T) func() redis.UniversalClient {
		c := redistest.StartCluster(t, 3)
		return func() redis.UniversalClient {
			rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
			t.Cleanup(func() { rdb.Close() })
			return rdb
		}
	}},
}

// single starts a redis-server for t and returns a client of it, closed
// in t.Cleanup.
func single(t *testing.T) (redis.UniversalClient, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	return client(t, srv.Addr), srv
}

// client returns a new client of the Redis at addr, one node of a fleet.
func client(t *testing.T, addr string) redis.UniversalClient {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// op is one call of a certmagic.Storage method.
type op struct {
	do    string // store, load, delete, exists, stat, list, listr (recursive)
	key   string
	value string // for store
}

// outcome is what a call did, in terms comparable across storages.
type outcome struct {
	Err      string // "", "not exist" (errors.Is fs.ErrNotExist) or "error"
	Value    string
	Exists   bool
	Keys     []string
	Key      string
	Terminal bool
	Size     int64     // of a file
	Modified time.Time // compared within a tolerance
}

func run(ctx context.Context, s certmagic.Storage, o op) outcome {
	var (
		out outcome
		err error
	)
	switch o.do {
	case "store":
		err = s.Store(ctx, o.key, []byte(o.value))
	case "load":
		var v []byte
		v, err = s.Load(ctx, o.key)
		out.Value = string(v)
	case "delete":
		err = s.Delete(ctx, o.key)
	case "exists":
		out.Exists = s.Exists(ctx, o.key)
	case "stat":
		var info certmagic.KeyInfo
		info, err = s.Stat(ctx, o.key)
		out.Key, out.Terminal, out.Modified = info.Key, info.IsTerminal, info.Modified
		if info.IsTerminal {
			out.Size = info.Size
		}
	case "list", "listr":
		var keys []string
		keys, err = s.List(ctx, o.key, o.do == "listr")
		slices.Sort(keys) // order is not part of the contract
		out.Keys = keys
	default:
		panic("unknown op " + o.do)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		out.Err = "not exist"
	case err != nil:
		out.Err = "error"
	}
	return out
}

// TestConformance runs the same operations on a Storage and on
// certmagic's FileStorage in a temp dir, and requires the same outcomes.
// Sequences that would leave an empty directory behind are left out: the
// file system keeps it, Storage does not (see TestEmptyDirectoryVanishes).
func TestConformance(t *testing.T) {
	const (
		issuer = "acme-v02.api.letsencrypt.org-directory"
		site   = "certificates/" + issuer + "/example.com"
		www    = "certificates/" + issuer + "/www.example.com"
	)
	tests := []struct {
		name string
		ops  []op
	}{
		{"empty", []op{
			{do: "load", key: "a"}, {do: "stat", key: "a"}, {do: "exists", key: "a"},
			{do: "list", key: "a"}, {do: "listr", key: "a"}, {do: "delete", key: "a"},
			{do: "list", key: ""}, {do: "listr", key: ""}, {do: "exists", key: ""},
		}},
		{"store and load", []op{
			{do: "store", key: "a/b/c.crt", value: "v1"},
			{do: "load", key: "a/b/c.crt"}, {do: "exists", key: "a/b/c.crt"}, {do: "stat", key: "a/b/c.crt"},
			{do: "store", key: "a/b/c.crt", value: "v222"},
			{do: "load", key: "a/b/c.crt"}, {do: "stat", key: "a/b/c.crt"},
			{do: "exists", key: "a"}, {do: "exists", key: "a/b"}, {do: "stat", key: "a/b"}, {do: "stat", key: "a"},
			{do: "load", key: "a/b"}, {do: "load", key: "a"}, {do: "load", key: "a/b/c"},
			{do: "exists", key: "a/b/c"}, {do: "exists", key: "a/bb"},
		}},
		{"certmagic layout", []op{
			{do: "store", key: site + "/example.com.crt", value: "cert"},
			{do: "store", key: site + "/example.com.key", value: "key"},
			{do: "store", key: site + "/example.com.json", value: "{}"},
			{do: "store", key: www + "/www.example.com.crt", value: "cert2"},
			{do: "store", key: "acme/" + issuer + "/users/me@example.com/me.json", value: "{}"},
			{do: "store", key: "ocsp/example.com-abc", value: "staple"},
			{do: "list", key: ""}, {do: "listr", key: ""}, {do: "stat", key: ""},
			{do: "list", key: "certificates"}, {do: "listr", key: "certificates"},
			{do: "list", key: "certificates/" + issuer}, {do: "list", key: site},
			{do: "stat", key: "acme/" + issuer + "/users/me@example.com"},
			{do: "list", key: "ocsp/example.com-abc"}, {do: "listr", key: "ocsp/example.com-abc"},
			{do: "list", key: "certificates/other"}, {do: "list", key: "cert"},
		}},
		{"prefixes are whole components", []op{
			{do: "store", key: "a/b", value: "1"}, {do: "store", key: "a/b.d", value: "2"},
			{do: "store", key: "ab/c", value: "3"}, {do: "store", key: "a-b/c", value: "4"},
			{do: "store", key: "a0", value: "5"},
			{do: "list", key: "a"}, {do: "listr", key: ""}, {do: "exists", key: "a/"},
			{do: "delete", key: "a"},
			{do: "exists", key: "a"}, {do: "exists", key: "ab/c"}, {do: "exists", key: "a-b/c"},
			{do: "load", key: "a0"}, {do: "list", key: ""},
		}},
		{"delete a file", []op{
			{do: "store", key: "d/x", value: "x"}, {do: "store", key: "d/y", value: "y"},
			{do: "delete", key: "d/x"},
			{do: "load", key: "d/x"}, {do: "stat", key: "d/x"}, {do: "list", key: "d"},
			{do: "delete", key: "d/x"}, {do: "delete", key: "missing/deep/key"},
			{do: "load", key: "d/y"},
		}},
		{"delete a directory", []op{
			{do: "store", key: "x/y/1", value: "1"}, {do: "store", key: "x/y/2", value: "2"},
			{do: "store", key: "x/y/z/3", value: "3"}, {do: "store", key: "x/z", value: "z"},
			{do: "store", key: "xy", value: "xy"},
			{do: "delete", key: "x/y"},
			{do: "listr", key: "x"}, {do: "exists", key: "x/y"}, {do: "exists", key: "x/y/z"},
			{do: "load", key: "x/y/1"}, {do: "list", key: "x/y"}, {do: "stat", key: "x/y"},
			{do: "delete", key: "x"},
			{do: "exists", key: "x"}, {do: "load", key: "x/z"}, {do: "list", key: ""}, {do: "load", key: "xy"},
		}},
		{"file and directory at one key", []op{
			{do: "store", key: "a/b", value: "v"},
			{do: "store", key: "a", value: "over a directory"},
			{do: "store", key: "a/b/c", value: "under a file"},
			{do: "store", key: "", value: "the root"},
			{do: "load", key: "a/b"}, {do: "load", key: ""}, {do: "listr", key: ""},
		}},
		{"keys are cleaned", []op{
			{do: "store", key: "/u//v/", value: "x"},
			{do: "load", key: "u/v"}, {do: "load", key: "u/./v"}, {do: "load", key: "w/../u/v"},
			{do: "list", key: "u/"}, {do: "listr", key: "/"}, {do: "stat", key: "/u/v/"},
			{do: "delete", key: "u/v/"}, {do: "exists", key: "u/v"},
		}},
		{"empty and binary values", []op{
			{do: "store", key: "e", value: ""},
			{do: "load", key: "e"}, {do: "stat", key: "e"}, {do: "exists", key: "e"},
			{do: "store", key: "bin", value: "\x00\xff\r\n\x80 é"},
			{do: "load", key: "bin"}, {do: "stat", key: "bin"},
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			rdb := b.start(t)()
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					ctx := t.Context()
					want := &certmagic.FileStorage{Path: t.TempDir()}
					got := New(rdb, "test:"+t.Name())
					for i, o := range tc.ops {
						w, g := run(ctx, want, o), run(ctx, got, o)
						if d := g.Modified.Sub(w.Modified).Abs(); d > 2*time.Second {
							t.Errorf("%d: %s %q: Modified %v, FileStorage %v", i, o.do, o.key, g.Modified, w.Modified)
						}
						w.Modified, g.Modified = time.Time{}, time.Time{}
						if fmt.Sprint(g) != fmt.Sprint(w) {
							t.Errorf("%d: %s %q:\n got %+v\nwant %+v (FileStorage)", i, o.do, o.key, g, w)
						}
					}
				})
			}
		})
	}
}

// TestEmptyDirectoryVanishes shows where Storage differs from a file
// system: a directory exists only while a file is under it.
func TestEmptyDirectoryVanishes(t *testing.T) {
	t.Parallel()
	rdb, _ := single(t)
	s := New(rdb, "")
	ctx := t.Context()
	mustStore(t, s, "d/e/f", "v")
	if err := s.Delete(ctx, "d/e/f"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "d/e") || s.Exists(ctx, "d") {
		t.Error("a directory exists after its last file was deleted")
	}
	if keys, err := s.List(ctx, "", true); err != nil || len(keys) != 0 {
		t.Errorf("List(\"\", true) = %q, %v; want nothing", keys, err)
	}
	if _, err := s.List(ctx, "d", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List(d) = %v, want fs.ErrNotExist", err)
	}
}

func mustStore(t *testing.T, s *Storage, key, value string) {
	t.Helper()
	if err := s.Store(t.Context(), key, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	rdb, srv := single(t)
	s := New(rdb, "")
	ctx := t.Context()
	mustStore(t, s, "dir/file", "v")
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"load missing", func() error { _, err := s.Load(ctx, "nope"); return err }, fs.ErrNotExist},
		{"stat missing", func() error { _, err := s.Stat(ctx, "nope"); return err }, fs.ErrNotExist},
		{"list missing", func() error { _, err := s.List(ctx, "nope", false); return err }, fs.ErrNotExist},
		{"load under a file", func() error { _, err := s.Load(ctx, "dir/file/x"); return err }, fs.ErrNotExist},
		{"load a directory", func() error { _, err := s.Load(ctx, "dir"); return err }, ErrIsDir},
		{"load the root", func() error { _, err := s.Load(ctx, ""); return err }, ErrIsDir},
		{"store over a directory", func() error { return s.Store(ctx, "dir", nil) }, ErrIsDir},
		{"store under a file", func() error { return s.Store(ctx, "dir/file/x", nil) }, ErrNotDir},
		{"unlock not locked", func() error { return s.Unlock(ctx, "nope") }, ErrNotLocked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) || !strings.HasPrefix(err.Error(), "redisstore: ") {
				t.Errorf("error %v, want one matching %v, starting with \"redisstore: \"", err, tc.want)
			}
		})
	}
	// A Redis that fails: its error is wrapped.
	closed := redis.NewClient(&redis.Options{Addr: srv.Addr})
	closed.Close()
	if err := New(closed, "").Store(ctx, "k", nil); !errors.Is(err, redis.ErrClosed) || !strings.HasPrefix(err.Error(), "redisstore: store \"k\": ") {
		t.Errorf("Store on a closed client: %v, want redis.ErrClosed wrapped", err)
	}
	if New(closed, "").Exists(ctx, "dir") {
		t.Error("Exists on a closed client = true")
	}
}

func TestStat(t *testing.T) {
	t.Parallel()
	rdb, _ := single(t)
	s := New(rdb, "")
	ctx := t.Context()
	before := time.Now()
	mustStore(t, s, "users/a/a.json", "12345")
	older, err := s.Stat(ctx, "users/a/a.json")
	if err != nil {
		t.Fatal(err)
	}
	if !older.IsTerminal || older.Size != 5 || older.Key != "users/a/a.json" ||
		older.Modified.Before(before.Add(-time.Second)) || older.Modified.After(time.Now().Add(time.Second)) {
		t.Errorf("Stat(file) = %+v, want terminal, size 5, modified about now", older)
	}
	// Store until Redis's microsecond clock has moved on.
	newer := older
	for deadline := time.Now().Add(5 * time.Second); !newer.Modified.After(older.Modified); {
		if time.Now().After(deadline) {
			t.Fatal("Modified did not advance")
		}
		mustStore(t, s, "users/b/b.json", "x")
		if newer, err = s.Stat(ctx, "users/b/b.json"); err != nil {
			t.Fatal(err)
		}
	}
	// A directory is as new as its newest file, which certmagic relies
	// on to pick the most recent ACME account.
	tests := []struct {
		key  string
		want time.Time
	}{
		{"users", newer.Modified},
		{"users/a", older.Modified},
		{"users/b", newer.Modified},
		{"", newer.Modified},
	}
	for _, tc := range tests {
		info, err := s.Stat(ctx, tc.key)
		if err != nil || info.IsTerminal || info.Size != 0 || info.Key != tc.key || !info.Modified.Equal(tc.want) {
			t.Errorf("Stat(%q) = %+v, %v; want a directory modified %v", tc.key, info, err, tc.want)
		}
	}
}

func TestPrefix(t *testing.T) {
	t.Parallel()
	rdb, _ := single(t)
	ctx := t.Context()
	tests := []struct {
		prefix, want string
	}{
		{"", "{edge:certs}"},
		{"edge:certs", "{edge:certs}"},
		{"{fleet}:certs", "{fleet}:certs"},
		{"a{}b", "{a{}b}"}, // an empty tag is no hash tag
		{"a}b{c", "{a}b{c}"},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			s := New(rdb, tc.prefix)
			if s.prefix != tc.want {
				t.Errorf("prefix %q, want %q", s.prefix, tc.want)
			}
			mustStore(t, s, "certificates/x.crt", tc.prefix)
			if err := s.Lock(ctx, "l"); err != nil {
				t.Fatal(err)
			}
			keys, err := rdb.Keys(ctx, tc.want+":*").Result()
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(keys)
			want := []string{tc.want + ":index", tc.want + ":k:certificates/x.crt", tc.want + ":lock:l"}
			if !slices.Equal(keys, want) {
				t.Errorf("Redis keys %q, want %q", keys, want)
			}
			if err := s.Unlock(ctx, "l"); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Storages with other prefixes do not see each other's keys.
	for _, tc := range tests[1:] {
		s := New(rdb, tc.prefix)
		if v, err := s.Load(ctx, "certificates/x.crt"); err != nil || string(v) != tc.prefix {
			t.Errorf("prefix %q: Load = %q, %v; want its own value", tc.prefix, v, err)
		}
		if err := s.Delete(ctx, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("after Delete(\"\") of every storage, DBSIZE = %d, %v; want 0", n, err)
	}
}

func TestDeleteMany(t *testing.T) {
	t.Parallel()
	rdb, _ := single(t)
	s := New(rdb, "")
	ctx := t.Context()
	const n = 2*deleteBatch + 7
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			storeScript.Eval(ctx, p, []string{s.index, s.valueKey("big/" + strconv.Itoa(i))}, "big/"+strconv.Itoa(i), "v")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustStore(t, s, "big.keep", "v")
	if keys, err := s.List(ctx, "big", false); err != nil || len(keys) != n {
		t.Fatalf("List(big) has %d keys, %v; want %d", len(keys), err, n)
	}
	if err := s.Delete(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "big") || !s.Exists(ctx, "big.keep") {
		t.Error("Delete(big) left a file under it or deleted a sibling")
	}
	if left, err := rdb.DBSize(ctx).Result(); err != nil || left != 2 {
		t.Errorf("DBSIZE = %d, %v; want 2 (the index and big.keep)", left, err)
	}
}

// fastLocks makes s poll quickly for tests.
func fastLocks(s *Storage) *Storage {
	s.pollInterval = 2 * time.Millisecond
	return s
}

// TestLockExcludes takes a lock on one node and tries it from another on
// the same Redis.
func TestLockExcludes(t *testing.T) {
	t.Parallel()
	_, srv := single(t)
	node1 := fastLocks(New(client(t, srv.Addr), "fleet"))
	node2 := fastLocks(New(client(t, srv.Addr), "fleet"))
	ctx := t.Context()
	if err := node1.Lock(ctx, "cert_example.com"); err != nil {
		t.Fatal(err)
	}
	if ok, err := node2.TryLock(ctx, "cert_example.com"); ok || err != nil {
		t.Fatalf("node2 TryLock of a held lock = %v, %v; want false", ok, err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := node2.Lock(short, "cert_example.com")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "redisstore: lock ") {
		t.Fatalf("node2 Lock of a held lock = %v, want it to wait until its deadline", err)
	}
	// Other names are other locks, also within one node.
	if err := node2.Lock(ctx, "cert_other.org"); err != nil {
		t.Fatal(err)
	}
	if err := node1.Lock(ctx, "ari_x"); err != nil {
		t.Fatal(err)
	}
	// node2 waits, and gets the lock once node1 releases it.
	got := make(chan error, 1)
	go func() { got <- node2.Lock(ctx, "cert_example.com") }()
	if err := node1.Unlock(ctx, "cert_example.com"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node2 did not get the lock after node1 released it")
	}
	if ok, err := node1.TryLock(ctx, "cert_example.com"); ok || err != nil {
		t.Fatalf("node1 TryLock of the lock node2 holds = %v, %v; want false", ok, err)
	}
	for _, u := range []struct {
		s    *Storage
		name string
	}{{node2, "cert_example.com"}, {node2, "cert_other.org"}, {node1, "ari_x"}} {
		if err := u.s.Unlock(ctx, u.name); err != nil {
			t.Fatal(err)
		}
	}
	if err := node1.Unlock(ctx, "ari_x"); !errors.Is(err, ErrNotLocked) {
		t.Errorf("second Unlock = %v, want ErrNotLocked", err)
	}
	if n, err := srv.Do(t, "DBSIZE"); err != nil || n != "0" {
		t.Errorf("DBSIZE after every Unlock = %s, %v; want 0", n, err)
	}
	for _, s := range []*Storage{node1, node2} {
		if len(s.locks) != 0 {
			t.Errorf("%d locks still tracked", len(s.locks))
		}
	}
}

// TestLockExpiresWhenHolderDies has a holder that never refreshes or
// releases its lock, as if its node died.
func TestLockExpiresWhenHolderDies(t *testing.T) {
	t.Parallel()
	_, srv := single(t)
	dead := New(client(t, srv.Addr), "fleet")
	dead.lockTTL, dead.refreshEvery = 300*time.Millisecond, 0
	node2 := fastLocks(New(client(t, srv.Addr), "fleet"))
	node3 := New(client(t, srv.Addr), "fleet")
	ctx := t.Context()
	if err := dead.Lock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if ok, err := node2.TryLock(ctx, "x"); ok || err != nil {
		t.Fatalf("TryLock before expiry = %v, %v; want false", ok, err)
	}
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := node2.Lock(wait, "x"); err != nil {
		t.Fatalf("Lock of an expired lock: %v", err)
	}
	// The dead node comes back: its Unlock must not release node2's lock.
	if err := dead.Unlock(ctx, "x"); !errors.Is(err, ErrLockLost) {
		t.Errorf("Unlock of an expired lock = %v, want ErrLockLost", err)
	}
	if ok, err := node3.TryLock(ctx, "x"); ok || err != nil {
		t.Fatalf("TryLock after the old holder's Unlock = %v, %v; want false: node2 holds it", ok, err)
	}
	if err := node2.Unlock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if ok, err := node3.TryLock(ctx, "x"); !ok || err != nil {
		t.Fatalf("TryLock after node2's Unlock = %v, %v; want true", ok, err)
	}
	if err := node3.Unlock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
}

// TestLockRefresh holds a lock for several TTLs.
func TestLockRefresh(t *testing.T) {
	t.Parallel()
	_, srv := single(t)
	holder := New(client(t, srv.Addr), "fleet")
	holder.lockTTL, holder.refreshEvery = 300*time.Millisecond, 100*time.Millisecond
	other := New(client(t, srv.Addr), "fleet")
	ctx := t.Context()
	if err := holder.Lock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(4 * holder.lockTTL); time.Now().Before(end); time.Sleep(20 * time.Millisecond) { // observing over time
		if ok, err := other.TryLock(ctx, "x"); ok || err != nil {
			t.Fatalf("TryLock of a refreshed lock = %v, %v; want false", ok, err)
		}
	}
	if err := holder.Unlock(ctx, "x"); err != nil {
		t.Fatalf("Unlock of a refreshed lock: %v", err)
	}
	if ok, err := other.TryLock(ctx, "x"); !ok || err != nil {
		t.Fatalf("TryLock after Unlock = %v, %v; want true", ok, err)
	}
	if err := other.Unlock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
}

// TestLockDefaultTTL checks that a lock taken with the defaults expires
// on its own within LockTTL.
func TestLockDefaultTTL(t *testing.T) {
	t.Parallel()
	rdb, _ := single(t)
	s := New(rdb, "")
	ctx := t.Context()
	if err := s.Lock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(ctx, s.lockKey("x")).Result()
	if err != nil || ttl <= LockTTL-time.Minute || ttl > LockTTL {
		t.Errorf("PTTL = %v, %v; want about %v", ttl, err, LockTTL)
	}
	if err := s.Unlock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(ctx, s.lockKey("x")).Result(); err != nil || n != 0 {
		t.Errorf("lock key exists after Unlock: %d, %v", n, err)
	}
}

// TestLockConcurrent has goroutines on three nodes increment a counter in
// storage by Load and Store under the lock: no increment may be lost.
func TestLockConcurrent(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			newClient := b.start(t)
			nodes := []*Storage{
				fastLocks(New(newClient(), "fleet")),
				fastLocks(New(newClient(), "fleet")),
				fastLocks(New(newClient(), "fleet")),
			}
			const workers, rounds = 12, 10
			ctx := t.Context()
			var inside atomic.Int32
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				s := nodes[w%len(nodes)]
				wg.Go(func() {
					for range rounds {
						if err := increment(ctx, s, &inside); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			v, err := nodes[0].Load(ctx, "counter")
			if err != nil || string(v) != strconv.Itoa(workers*rounds) {
				t.Errorf("counter = %s, %v; want %d", v, err, workers*rounds)
			}
		})
	}
}

// increment adds one to the counter in s, under the lock.
func increment(ctx context.Context, s *Storage, inside *atomic.Int32) error {
	if err := s.Lock(ctx, "counter"); err != nil {
		return err
	}
	defer s.Unlock(context.WithoutCancel(ctx), "counter")
	if n := inside.Add(1); n != 1 {
		return fmt.Errorf("%d holders at once", n)
	}
	defer inside.Add(-1)
	n := 0
	v, err := s.Load(ctx, "counter")
	switch {
	case err == nil:
		if n, err = strconv.Atoi(string(v)); err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return s.Store(ctx, "counter", []byte(strconv.Itoa(n+1)))
}

// TestFleetObtainsOnce runs certmagic on ten nodes that share a Redis:
// they all want a certificate for one name at once, the issuer is asked
// once, and every node loads that certificate.
func TestFleetObtainsOnce(t *testing.T) {
	t.Parallel()
	_, srv := single(t)
	ctx := t.Context()
	iss := newCountingIssuer(t)
	const nodes, name = 10, "edge.example.com"
	configs := make([]*certmagic.Config, nodes)
	for i := range configs {
		var cfg *certmagic.Config
		cache := certmagic.NewCache(certmagic.CacheOptions{
			GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
			Logger:           zap.NewNop(),
		})
		t.Cleanup(cache.Stop)
		cfg = certmagic.New(cache, certmagic.Config{
			Storage: fastLocks(New(client(t, srv.Addr), "fleet")),
			Issuers: []certmagic.Issuer{iss},
			Logger:  zap.NewNop(),
		})
		configs[i] = cfg
	}
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i, cfg := range configs {
		wg.Go(func() { errs[i] = cfg.ObtainCertSync(ctx, name) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := iss.calls.Load(); n != 1 {
		t.Errorf("the issuer was asked %d times, want once", n)
	}
	var serial string
	for i, cfg := range configs {
		cert, err := cfg.CacheManagedCertificate(ctx, name)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if i == 0 {
			serial = cert.Leaf.SerialNumber.String()
		} else if s := cert.Leaf.SerialNumber.String(); s != serial {
			t.Errorf("node %d has certificate %s, node 0 has %s", i, s, serial)
		}
	}
}

// countingIssuer is a certmagic.Issuer that signs every request with a
// test CA and counts them.
type countingIssuer struct {
	ca    *x509.Certificate
	key   *ecdsa.PrivateKey
	calls atomic.Int32
}

func newCountingIssuer(t *testing.T) *countingIssuer {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &countingIssuer{ca: ca, key: key}
}

func (iss *countingIssuer) IssuerKey() string { return "counting" }

func (iss *countingIssuer) Issue(_ context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	n := iss.calls.Add(1)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(n) + 1), DNSNames: csr.DNSNames,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, iss.ca, csr.PublicKey, iss.key)
	if err != nil {
		return nil, err
	}
	return &certmagic.IssuedCertificate{Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func ExampleNew() {
	// One client of the fleet's Redis (a *redis.ClusterClient works too).
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close()

	// Every node uses the same prefix, so they share certificates and
	// locks: the first node to need a certificate obtains it, the others
	// wait for its lock and load the certificate from Redis.
	var magic *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
	})
	defer cache.Stop()
	magic = certmagic.New(cache, certmagic.Config{Storage: New(rdb, "edge:certs")})

	// Then, e.g.: magic.ManageSync(ctx, names); tlsConfig := magic.TLSConfig()
}
