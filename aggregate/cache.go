package aggregate

import (
	"container/list"
	"sync"
)

// cache is a bounded LRU of instance states.
type cache[S any] struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[string]*list.Element
}

func newCache[S any](max int) *cache[S] {
	return &cache[S]{max: max, ll: list.New(), items: make(map[string]*list.Element)}
}

func (c *cache[S]) get(id string) (Instance[S], bool) {
	if c.max < 0 {
		return Instance[S]{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[id]
	if !ok {
		return Instance[S]{}, false
	}
	c.ll.MoveToFront(el)
	return el.Value.(Instance[S]), true
}

// put stores inst unless the cache holds a newer version of it.
func (c *cache[S]) put(id string, inst Instance[S]) {
	if c.max < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		if el.Value.(Instance[S]).Version > inst.Version {
			return
		}
		el.Value = inst
		c.ll.MoveToFront(el)
		return
	}
	c.items[id] = c.ll.PushFront(inst)
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(Instance[S]).ID)
	}
}

func (c *cache[S]) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		c.ll.Remove(el)
		delete(c.items, id)
	}
}
