package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
)

var (
	_ certmagic.Storage   = (*Storage)(nil)
	_ certmagic.TryLocker = (*Storage)(nil)
)

// Errors of Storage, besides the fs.ErrNotExist that Load, Stat and List
// wrap for a missing key and the context's error when a Lock is canceled.
var (
	// ErrIsDir is returned by Store and Load for a key that is a
	// directory: a prefix of stored keys, or the root.
	ErrIsDir = errors.New("redisstore: is a directory")
	// ErrNotDir is returned by Store for a key under a file, such as
	// "a/b/c" when "a/b" is a file.
	ErrNotDir = errors.New("redisstore: not a directory")
	// ErrNotLocked is returned by Unlock for a name this Storage does not
	// hold.
	ErrNotLocked = errors.New("redisstore: not locked")
	// ErrLockLost is returned by Unlock when the lock expired while held
	// (its refresh failed for a whole TTL); another node may have taken
	// it since, and Unlock left that node's lock alone.
	ErrLockLost = errors.New("redisstore: lock lost")
)

const (
	// DefaultPrefix is the prefix New uses for an empty one.
	DefaultPrefix = "edge:certs"

	// LockTTL is how long a lock outlives its holder: a node that dies
	// holding a lock blocks the others for at most this long. A holder
	// refreshes its lock every LockTTL/3.
	LockTTL = 2 * time.Minute

	// LockPollInterval is how often Lock tries again for a lock that
	// another holds.
	LockPollInterval = 500 * time.Millisecond

	// deleteBatch is how many keys Delete removes per transaction.
	deleteBatch = 512
)

// Storage is a certmagic.Storage in Redis, shared by every node that uses
// the same Redis and prefix. Create it with New; the zero value is not
// usable. It is safe for concurrent use.
//
// Keys are cleaned like paths ("/a//b/" is "a/b"); the root "" is a
// directory that always exists. A key is a file or a directory, never
// both: Store refuses a key that is a directory (ErrIsDir) or lies under a
// file (ErrNotDir). Directories are implicit: one exists while a file
// under it does, so unlike on a file system no empty directory remains
// after its last file is deleted.
//
// Storage does not close the client.
type Storage struct {
	rdb    redis.UniversalClient
	prefix string // has a hash tag, e.g. "{edge:certs}"
	index  string // the sorted set of all file keys

	lockTTL      time.Duration
	refreshEvery time.Duration // 0: no refresh (tests simulate a holder that died)
	pollInterval time.Duration

	mu sync.Mutex
	// mu guards locks.
	locks map[string]*heldLock
}

// heldLock is a lock this Storage holds, kept fresh by its refresh
// goroutine until Unlock.
type heldLock struct {
	key   string // Redis key
	token string // random, unique to this holding
	stop  context.CancelFunc
	done  chan struct{} // closed when the refresh goroutine has returned
}

// New returns a Storage that keeps its keys in client under prefix
// (DefaultPrefix if empty). Every key starts with prefix, which is
// wrapped in braces ("edge:certs" becomes "{edge:certs}") unless it
// already has a Redis Cluster hash tag, so that all keys of one Storage
// hash to one cluster slot. It panics if client is nil.
func New(client redis.UniversalClient, prefix string) *Storage {
	if client == nil {
		panic("redisstore: New with a nil client")
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !hasHashTag(prefix) {
		prefix = "{" + prefix + "}"
	}
	return &Storage{
		rdb:          client,
		prefix:       prefix,
		index:        prefix + ":index",
		lockTTL:      LockTTL,
		refreshEvery: LockTTL / 3,
		pollInterval: LockPollInterval,
		locks:        make(map[string]*heldLock),
	}
}

// hasHashTag reports whether Redis Cluster hashes key by a part in braces:
// a "{" followed, not at once, by a "}".
func hasHashTag(key string) bool {
	i := strings.IndexByte(key, '{')
	return i >= 0 && strings.IndexByte(key[i+1:], '}') > 0
}

// String names the storage in certmagic's logs.
func (s *Storage) String() string { return "redisstore:" + s.prefix }

// valueKey is the hash that holds the file key.
func (s *Storage) valueKey(key string) string { return s.prefix + ":k:" + key }

// lockKey is the string that holds the lock name.
func (s *Storage) lockKey(name string) string { return s.prefix + ":lock:" + name }

// clean returns key as a slash-separated path without empty, "." and ".."
// elements, and without leading or trailing slashes; "" is the root.
func clean(key string) string {
	return strings.TrimPrefix(path.Clean("/"+key), "/")
}

// under returns the ZRANGEBYLEX bounds of the keys below directory dir.
func under(dir string) (lo, hi string) {
	if dir == "" {
		return "-", "+"
	}
	return "[" + dir + "/", "(" + dir + "0" // '0' follows '/'
}

// below returns up to limit (0: all) file keys under directory dir, in
// byte order.
func (s *Storage) below(ctx context.Context, dir string, limit int64) ([]string, error) {
	lo, hi := under(dir)
	return s.rdb.ZRangeByLex(ctx, s.index, &redis.ZRangeBy{Min: lo, Max: hi, Count: limit}).Result()
}

// storeScript stores a file: KEYS[1] is the index, KEYS[2] the file's
// hash; ARGV[1] is the cleaned key, ARGV[2] the value. It returns 0, or 1
// when a prefix of the key is a file, or 2 when the key is a directory.
// The modification time is Redis's clock, the same for every node, in
// microseconds since the epoch.
var storeScript = redis.NewScript(`
local key = ARGV[1]
local i = string.find(key, "/", 1, true)
while i do
	if redis.call("ZSCORE", KEYS[1], string.sub(key, 1, i - 1)) then
		return 1
	end
	i = string.find(key, "/", i + 1, true)
end
if #redis.call("ZRANGEBYLEX", KEYS[1], "[" .. key .. "/", "(" .. key .. "0", "LIMIT", 0, 1) > 0 then
	return 2
end
local t = redis.call("TIME")
local modified = t[1] .. string.rep("0", 6 - #t[2]) .. t[2]
redis.call("HSET", KEYS[2], "value", ARGV[2], "modified", modified, "size", #ARGV[2])
redis.call("ZADD", KEYS[1], 0, key)
return 0
`)

// Store puts value at key, creating or replacing the file.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	k := clean(key)
	if k == "" {
		return fmt.Errorf("redisstore: store %q: %w", key, ErrIsDir)
	}
	code, err := storeScript.Run(ctx, s.rdb, []string{s.index, s.valueKey(k)}, k, value).Int()
	switch {
	case err != nil:
		return fmt.Errorf("redisstore: store %q: %w", key, err)
	case code == 1:
		return fmt.Errorf("redisstore: store %q: %w", key, ErrNotDir)
	case code == 2:
		return fmt.Errorf("redisstore: store %q: %w", key, ErrIsDir)
	}
	return nil
}

// Load returns the value at key; the error wraps fs.ErrNotExist when
// there is no such key, and ErrIsDir when the key is a directory.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	k := clean(key)
	if k == "" {
		return nil, fmt.Errorf("redisstore: load %q: %w", key, ErrIsDir)
	}
	value, err := s.rdb.HGet(ctx, s.valueKey(k), "value").Bytes()
	if err == nil {
		return value, nil
	}
	if !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: load %q: %w", key, err)
	}
	files, err := s.below(ctx, k, 1)
	switch {
	case err != nil:
		return nil, fmt.Errorf("redisstore: load %q: %w", key, err)
	case len(files) > 0:
		return nil, fmt.Errorf("redisstore: load %q: %w", key, ErrIsDir)
	}
	return nil, fmt.Errorf("redisstore: load %q: %w", key, fs.ErrNotExist)
}

// Delete deletes the file key, or every file under the directory key
// ("" is the root: everything). A missing key is not an error. It deletes
// up to 512 files per transaction and reads the directory again until it
// finds it empty, so files stored under it meanwhile are deleted too.
func (s *Storage) Delete(ctx context.Context, key string) error {
	k := clean(key)
	for {
		files, err := s.below(ctx, k, deleteBatch)
		if err != nil {
			return fmt.Errorf("redisstore: delete %q: %w", key, err)
		}
		more := len(files) == deleteBatch
		if k != "" {
			files = append(files, k)
		}
		if len(files) == 0 {
			return nil
		}
		_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			keys := make([]string, len(files))
			members := make([]any, len(files))
			for i, f := range files {
				keys[i], members[i] = s.valueKey(f), f
			}
			p.Del(ctx, keys...)
			p.ZRem(ctx, s.index, members...)
			return nil
		})
		if err != nil {
			return fmt.Errorf("redisstore: delete %q: %w", key, err)
		}
		if !more {
			return nil
		}
	}
}

// Exists reports whether key is a file or a directory. It reports false
// when Redis fails.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	k := clean(key)
	if k == "" {
		return true
	}
	var file *redis.IntCmd
	var files *redis.StringSliceCmd
	lo, hi := under(k)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		file = p.Exists(ctx, s.valueKey(k))
		files = p.ZRangeByLex(ctx, s.index, &redis.ZRangeBy{Min: lo, Max: hi, Count: 1})
		return nil
	})
	return err == nil && (file.Val() == 1 || len(files.Val()) > 0)
}

// List returns the keys in directory dir, in byte order: with recursive,
// every file and directory below it (as certmagic's FileStorage walks
// them); without, only its direct children. The keys are dir joined with
// their paths relative to it. A file has no children: List returns none.
// The error wraps fs.ErrNotExist when dir does not exist.
func (s *Storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	d := clean(dir)
	files, err := s.below(ctx, d, 0)
	if err != nil {
		return nil, fmt.Errorf("redisstore: list %q: %w", dir, err)
	}
	if len(files) == 0 {
		if d == "" {
			return nil, nil
		}
		n, err := s.rdb.Exists(ctx, s.valueKey(d)).Result()
		switch {
		case err != nil:
			return nil, fmt.Errorf("redisstore: list %q: %w", dir, err)
		case n == 0:
			return nil, fmt.Errorf("redisstore: list %q: %w", dir, fs.ErrNotExist)
		}
		return nil, nil
	}
	base := d
	if base != "" {
		base += "/"
	}
	seen := make(map[string]bool)
	var keys []string
	add := func(rel string) {
		if k := path.Join(dir, rel); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for _, f := range files {
		rel := f[len(base):]
		if !recursive {
			child, _, _ := strings.Cut(rel, "/")
			add(child)
			continue
		}
		for i, c := range rel {
			if c == '/' {
				add(rel[:i])
			}
		}
		add(rel)
	}
	slices.Sort(keys)
	return keys, nil
}

// Stat describes key. A file's Modified is when it was last stored, by
// Redis's clock; a directory's is the newest Modified of the files under
// it, and its Size is 0. The error wraps fs.ErrNotExist when key does not
// exist.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	k := clean(key)
	if k != "" {
		fields, err := s.rdb.HMGet(ctx, s.valueKey(k), "modified", "size").Result()
		if err != nil {
			return certmagic.KeyInfo{}, fmt.Errorf("redisstore: stat %q: %w", key, err)
		}
		if fields[0] != nil {
			modified, err := parseMicros(fields[0])
			if err != nil {
				return certmagic.KeyInfo{}, fmt.Errorf("redisstore: stat %q: modified: %w", key, err)
			}
			size, err := strconv.ParseInt(fmt.Sprint(fields[1]), 10, 64)
			if err != nil {
				return certmagic.KeyInfo{}, fmt.Errorf("redisstore: stat %q: size: %w", key, err)
			}
			return certmagic.KeyInfo{Key: key, Modified: modified, Size: size, IsTerminal: true}, nil
		}
	}
	files, err := s.below(ctx, k, 0)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("redisstore: stat %q: %w", key, err)
	}
	if len(files) == 0 && k != "" {
		return certmagic.KeyInfo{}, fmt.Errorf("redisstore: stat %q: %w", key, fs.ErrNotExist)
	}
	info := certmagic.KeyInfo{Key: key}
	if len(files) == 0 {
		return info, nil
	}
	modified := make([]*redis.StringCmd, len(files))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, f := range files {
			modified[i] = p.HGet(ctx, s.valueKey(f), "modified")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) { // Nil: a file deleted meanwhile
		return certmagic.KeyInfo{}, fmt.Errorf("redisstore: stat %q: %w", key, err)
	}
	for _, c := range modified {
		if m, err := parseMicros(c.Val()); err == nil && m.After(info.Modified) {
			info.Modified = m
		}
	}
	return info, nil
}

// parseMicros parses a modification time as storeScript writes it.
func parseMicros(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("%T, want a string", v)
	}
	us, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMicro(us), nil
}

// Lock takes the lock name, waiting while another holds it (trying again
// every LockPollInterval) until ctx is done. The lock is a Redis key with
// a TTL of LockTTL and a random token, which a goroutine refreshes every
// LockTTL/3 until Unlock; if the node dies, the lock expires after
// LockTTL. It returns an error if Redis fails or ctx is done first; the
// error wraps ctx.Err() then.
func (s *Storage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(s.pollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("redisstore: lock %q: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// TryLock takes the lock name if no one holds it, reporting whether it
// did. A lock taken must be released with Unlock; see Lock.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	l := &heldLock{key: s.lockKey(name), token: rand.Text(), done: make(chan struct{})}
	ok, err := acquireScript.Run(ctx, s.rdb, []string{l.key}, l.token, s.lockTTL.Milliseconds()).Bool()
	if err != nil {
		// The lock may have been set all the same (the reply was
		// lost): delete it rather than block everyone for its TTL.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		unlockScript.Run(cleanup, s.rdb, []string{l.key}, l.token)
		cancel()
		return false, fmt.Errorf("redisstore: lock %q: %w", name, err)
	}
	if !ok {
		return false, nil
	}
	var rctx context.Context
	rctx, l.stop = context.WithCancel(context.Background())
	if s.refreshEvery > 0 {
		go s.refresh(rctx, l)
	} else {
		close(l.done)
	}
	s.mu.Lock()
	old := s.locks[name]
	s.locks[name] = l
	s.mu.Unlock()
	if old != nil {
		// This Storage held the lock before, but it expired
		// unreleased: that holding is over.
		old.stop()
		<-old.done
	}
	return true, nil
}

// acquireScript sets the lock KEYS[1] to the token ARGV[1] with a TTL of
// ARGV[2] milliseconds unless it is set, returning 1 if it holds the token
// then: also when the client sent the script again after a lost reply.
var acquireScript = redis.NewScript(`
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) or redis.call("GET", KEYS[1]) == ARGV[1] then
	return 1
end
return 0
`)

// refreshScript extends the lock KEYS[1] to ARGV[2] milliseconds if it
// still holds the token ARGV[1], returning 1, or else 0.
var refreshScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
`)

// refresh keeps l from expiring until ctx is canceled, or until it finds
// that l expired (Unlock then reports it). A failed refresh is tried
// again at the next tick.
func (s *Storage) refresh(ctx context.Context, l *heldLock) {
	defer close(l.done)
	tick := time.NewTicker(s.refreshEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, s.refreshEvery)
		n, err := refreshScript.Run(rctx, s.rdb, []string{l.key}, l.token, s.lockTTL.Milliseconds()).Int()
		cancel()
		if err == nil && n == 0 {
			return
		}
	}
}

// unlockScript deletes the lock KEYS[1] if it holds the token ARGV[1],
// returning 1, or else 0.
var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`)

// Unlock releases the lock name taken by Lock or TryLock on s, and stops
// its refresh goroutine before it returns. It deletes the lock only if
// this holding still owns it: if the lock expired meanwhile, the error
// wraps ErrLockLost. If Redis fails, the lock expires within LockTTL.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	l := s.locks[name]
	delete(s.locks, name)
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("redisstore: unlock %q: %w", name, ErrNotLocked)
	}
	l.stop()
	<-l.done
	n, err := unlockScript.Run(ctx, s.rdb, []string{l.key}, l.token).Int()
	switch {
	case err != nil:
		return fmt.Errorf("redisstore: unlock %q: %w", name, err)
	case n == 0:
		return fmt.Errorf("redisstore: unlock %q: %w", name, ErrLockLost)
	}
	return nil
}
