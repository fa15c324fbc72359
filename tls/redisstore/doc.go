// Package redisstore is a certmagic.Storage in Redis, so that the edge
// nodes of a fleet on one Redis share their certificates, ACME accounts
// and locks: ten nodes that want a certificate for one name obtain it
// once, and each loads it from Redis.
//
//	storage := redisstore.New(rdb, "edge:certs") // the same on every node
//	magic := certmagic.New(cache, certmagic.Config{Storage: storage})
//
// # Keys
//
// All keys of a Storage start with its prefix, which carries a Redis
// Cluster hash tag ("edge:certs" becomes "{edge:certs}"), so they live in
// one cluster slot and its multi-key transactions and scripts work on a
// Redis Cluster as on a single Redis. With prefix P:
//
//	P:k:<key>      a hash per certmagic file key: value (the bytes),
//	               modified (microseconds since the epoch, Redis's clock),
//	               size (bytes)
//	P:index        a sorted set of every file key, all with score 0,
//	               read by ZRANGEBYLEX for List, Stat and Exists of a
//	               directory and Delete of a directory
//	P:lock:<name>  a string per held lock: a random token, with a TTL
//
// Store writes the hash and the index in one script, Delete removes both
// in one transaction, so they agree. Directories are implicit in the file
// keys; List, Stat and Delete treat them as certmagic's FileStorage does,
// except that no empty directory stays behind when its last file is
// deleted. Nothing expires but locks: run Redis without eviction
// (maxmemory-policy noeviction) and with persistence, or certificates and
// ACME accounts are lost with it.
//
// # Locks
//
// Lock sets P:lock:<name> to a random token with SET NX PX and a TTL of
// LockTTL (in a script that also accepts its own token, should the client
// resend it after a lost reply), trying again every LockPollInterval while
// another holds it. A goroutine of the holder extends the TTL every
// LockTTL/3 while the token is still there; Unlock stops that goroutine
// and deletes the key by a script that compares the token, so a holder
// whose lock expired never deletes its successor's. A node that dies
// holding a lock blocks the others for at most LockTTL. Like every lock
// built on timeouts (see certmagic.Locker), mutual exclusion fails if a
// holder is cut off from Redis for longer than LockTTL; certmagic expects
// that to be rare and checks storage for another node's work after it
// takes a lock.
//
// Storage also implements certmagic.TryLocker. It does not implement
// certmagic.LockLeaseRenewer: its locks are refreshed for as long as
// they are held, and a longer lease would only keep a dead node's lock.
package redisstore
