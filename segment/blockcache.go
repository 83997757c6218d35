package segment

import "sync"

// BlockCache holds decompressed blocks of compressed segments, bounded by
// the total size of the blocks it holds, least recently used evicted
// first. A log shares one among its segments (Segment.SetBlockCache), so
// readers that come back to a block (a stream read again, events of one
// stream sharing blocks) decompress it once. Concurrent readers of one
// missing block wait for a single decompression. Only blocks that
// decompressed and checked out are cached: a failure is returned to every
// reader waiting for it and cached nowhere, so the next read tries again
// and reports the damage again.
//
// The blocks handed out are never modified: a reader may keep using one
// after it was evicted. A BlockCache is safe for concurrent use.
type BlockCache struct {
	limit int64

	mu   sync.Mutex
	size int64 // bytes of the cached blocks
	m    map[blockKey]*cacheEntry
	lru  cacheEntry // sentinel of the list of cached blocks, most recent first
}

type blockKey struct {
	r     *zReader
	block int
}

type cacheEntry struct {
	key        blockKey
	ready      chan struct{} // closed once data or err is set
	data       []byte
	err        error
	prev, next *cacheEntry // in the LRU list, once loaded
}

// NewBlockCache returns a cache holding at most limit bytes of blocks
// (limit <= 0: none; concurrent readers of one block still share its
// decompression).
func NewBlockCache(limit int64) *BlockCache {
	c := &BlockCache{limit: limit, m: make(map[blockKey]*cacheEntry)}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	return c
}

// Size returns the bytes of blocks the cache holds.
func (c *BlockCache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// get returns the block of key, calling load (once, whoever asks
// meanwhile) if the cache does not hold it.
func (c *BlockCache) get(key blockKey, load func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	if e, ok := c.m[key]; ok {
		if e.prev != nil { // loaded
			c.unlinkLocked(e)
			c.pushFrontLocked(e)
			c.mu.Unlock()
			return e.data, nil
		}
		c.mu.Unlock()
		<-e.ready
		return e.data, e.err
	}
	e := &cacheEntry{key: key, ready: make(chan struct{})}
	c.m[key] = e
	c.mu.Unlock()

	data, err := load()

	c.mu.Lock()
	e.data, e.err = data, err
	if err != nil || c.limit <= 0 || int64(len(data)) > c.limit {
		delete(c.m, key)
	} else {
		c.pushFrontLocked(e)
		c.size += int64(len(data))
		for c.size > c.limit {
			c.evictLocked(c.lru.prev)
		}
	}
	c.mu.Unlock()
	close(e.ready)
	return data, err
}

// cached reports whether the cache holds (or is loading) key.
func (c *BlockCache) cached(key blockKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[key]
	return ok
}

// drop evicts every block of r (a segment being closed).
func (c *BlockCache) drop(r *zReader) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.lru.next; e != &c.lru; {
		next := e.next
		if e.key.r == r {
			c.evictLocked(e)
		}
		e = next
	}
}

func (c *BlockCache) evictLocked(e *cacheEntry) {
	c.unlinkLocked(e)
	delete(c.m, e.key)
	c.size -= int64(len(e.data))
}

func (c *BlockCache) unlinkLocked(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *BlockCache) pushFrontLocked(e *cacheEntry) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}
