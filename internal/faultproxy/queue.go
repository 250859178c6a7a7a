package faultproxy

import (
	"sync"
	"time"
)

// chunk is what one read from a side produced: data, or the end of the side.
type chunk struct {
	data []byte
	due  time.Time // not to be delivered before
	end  bool      // the source ended with err; data is empty
	err  error
}

// queue is a FIFO of chunks bounded by bytes, between one reader goroutine
// (push) and one writer goroutine (pop). With one goroutine on each end, a
// one-slot signal channel per condition cannot lose a wake-up: each side
// re-checks the state after every signal.
type queue struct {
	limit int
	ready chan struct{} // signalled after a push
	space chan struct{} // signalled after a pop

	mu sync.Mutex
	// Guarded by mu.
	items []chunk
	bytes int // data plus chunkOverhead per chunk in items
}

func newQueue(limit int) *queue {
	return &queue{
		limit: limit,
		ready: make(chan struct{}, 1),
		space: make(chan struct{}, 1),
	}
}

// push appends ch, waiting while the queue is full. A chunk larger than the
// limit is taken when the queue is empty. It reports false, without
// queueing ch, if done is closed while it waits.
func (q *queue) push(ch chunk, done <-chan struct{}) bool {
	cost := len(ch.data) + chunkOverhead
	for {
		q.mu.Lock()
		if q.bytes == 0 || q.bytes+cost <= q.limit {
			q.items = append(q.items, ch)
			q.bytes += cost
			q.mu.Unlock()
			signal(q.ready)
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-done:
			return false
		}
	}
}

// pop removes and returns the oldest chunk, waiting while the queue is
// empty. It reports false if done is closed while it waits.
func (q *queue) pop(done <-chan struct{}) (chunk, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			ch := q.items[0]
			q.items[0] = chunk{} // let the data be collected
			q.items = q.items[1:]
			q.bytes -= len(ch.data) + chunkOverhead
			q.mu.Unlock()
			signal(q.space)
			return ch, true
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-done:
			return chunk{}, false
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
