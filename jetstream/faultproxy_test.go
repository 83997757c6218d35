package jetstream_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// faultProxy is a loopback TCP proxy between nats.go clients and a NATS
// server that injects connection-level faults deterministically: it parses
// the protocol both ways, counts the clients' publishes (PUB and HPUB) to
// subjects under watch, over all connections, and at the nth one either
// drops the server's answer to it (faultDrop), replaces that answer with
// bytes that are no JSON (faultGarble) or with JSON that is no
// acknowledgement (faultBlank: "{}"), as a broken server or middlebox
// might, though the server acted on the publish, or cuts the connection once the server received it (faultCut:
// after the server answered it, the answer dropped, if it asks for one;
// else right after forwarding it).
// Nothing is timed: the client learns of the fault by its own timeout or
// by the lost connection.
type faultProxy struct {
	t      testing.TB
	ln     net.Listener
	server string
	watch  string
	wg     sync.WaitGroup

	mu    sync.Mutex
	kind  faultKind
	n     int    // the publish to fault (1-based)
	pubs  int    // publishes to watch seen
	fired bool   // the fault happened
	batch string // the faulted publish's Nats-Batch-Id
	// answered: the faulted publish asked for an answer, which the
	// client never got.
	answered bool
	// after runs once, when the fault happens (before the answer is
	// dropped or the connection cut): another writer appending.
	after func()
	// forget gives every later publish not of the faulted batch a
	// different Nats-Msg-Id: a retry reaching a server that no longer
	// remembers the first attempt's IDs (after the duplicate window).
	forget bool
	conns  map[net.Conn]bool
	closed bool // the test ended: no new connection is proxied
	// muted: the messages the server delivers on subjects starting with
	// it are dropped, every one (see mute).
	muted string
	// held is the publish faultHold holds back, and the connection to
	// the server it was to go on.
	held      []byte
	heldReply string
	heldTo    *proxyConn
}

// release sends the publish faultHold held back to the server, on the
// connection it came from, and waits for the server's answer (which goes
// on to a client that gave up): the server has acted on it.
func (p *faultProxy) release() {
	p.mu.Lock()
	frame, reply, pc := p.held, p.heldReply, p.heldTo
	p.held, p.heldReply, p.heldTo = nil, "", nil
	p.mu.Unlock()
	if pc == nil || reply == "" {
		p.t.Fatal("faultProxy: release with nothing held that asks for an answer")
	}
	answered := make(chan struct{})
	pc.mu.Lock()
	pc.awaitTo, pc.awaited = reply, answered
	pc.mu.Unlock()
	if err := pc.toServer(frame); err != nil {
		p.t.Fatalf("faultProxy: releasing the held publish: %v", err)
	}
	select {
	case <-answered:
	case <-time.After(hangGuard):
		p.t.Fatal("faultProxy: the server never answered the released publish")
	}
}

type faultKind int

const (
	faultDrop faultKind = iota + 1
	faultCut
	faultGarble
	faultBlank
	// faultHold holds the publish back, unsent, until release: a request
	// stuck in a buffer and delivered late, after its client gave up.
	faultHold
	// faultHook passes the answer on unchanged, after running the hook:
	// another process acting between the server's answer and the
	// client's next step.
	faultHook
	// faultForeign rewrites the answer's stream name ("stream":"X" to
	// "stream":"ELSEWHERE_X"), as from a server that stored the publish
	// in another stream.
	faultForeign
)

// garbage is what faultGarble and faultBlank answer instead of the server.
var garbage = map[faultKind]string{faultGarble: "{\"stream\":\x00garbled", faultBlank: "{}"}

func (k faultKind) String() string {
	switch k {
	case faultDrop:
		return "drop-answer"
	case faultGarble:
		return "garble-answer"
	case faultBlank:
		return "blank-answer"
	case faultForeign:
		return "foreign-answer"
	case faultHold:
		return "hold"
	case faultHook:
		return "hook"
	}
	return "cut"
}

// startFaultProxy listens on a loopback port, forwarding to serverAddr
// (host:port), until the test ends.
func startFaultProxy(t testing.TB, serverAddr string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, ln: ln, server: serverAddr, conns: map[net.Conn]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		p.closed = true
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		// Every proxy goroutine ends once its connections are closed,
		// unless a fault's hook blocks: fail, never hang, then.
		done := make(chan struct{})
		go func() { p.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(hangGuard):
			t.Errorf("faultProxy: its goroutines did not end within %v of the test's end (a fault's hook blocked?)", hangGuard)
		}
	})
	return p
}

// URL is the proxy's client URL.
func (p *faultProxy) URL() string { return "nats://" + p.ln.Addr().String() }

// arm sets the fault for the nth publish to subjects starting with watch,
// counting from now.
func (p *faultProxy) arm(watch string, kind faultKind, n int, after func(), forget bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watch, p.kind, p.n, p.pubs, p.fired, p.batch, p.answered, p.after, p.forget = watch, kind, n, 0, false, "", false, after, forget
}

// mute drops, from now on, every message the server delivers to a client
// on a subject starting with prefix (a consumer's deliveries, say), while
// everything else passes: a watch that never receives what it waits for.
func (p *faultProxy) mute(prefix string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.muted = prefix
}

// published returns the number of publishes to watch seen since arm.
func (p *faultProxy) published() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pubs
}

// hasFired reports whether the armed fault happened, and whether it took
// an answer from the client.
func (p *faultProxy) hasFired() (fired, answered bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fired, p.answered
}

func (p *faultProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.server)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			// Accepted as the test ended, after its connections were
			// closed: nothing would ever close these.
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		pc := &proxyConn{p: p, client: c, server: s}
		p.wg.Go(pc.clientToServer)
		p.wg.Go(pc.serverToClient)
	}
}

// proxyConn is one proxied client connection.
type proxyConn struct {
	p              *faultProxy
	client, server net.Conn

	wmu sync.Mutex // serialises writes to server

	mu      sync.Mutex
	dropTo  string        // the reply subject whose answer is dropped
	cut     bool          // and then the connection cut
	garble  string        // or replaced by this instead (garbage)
	foreign bool          // or its stream name rewritten (faultForeign)
	after   func()        // run when that answer comes
	pass    bool          // then passed on unchanged (faultHook)
	awaitTo string        // the reply subject of a released publish
	awaited chan struct{} // closed when its answer comes
}

// toServer writes one frame to the server.
func (pc *proxyConn) toServer(frame []byte) error {
	pc.wmu.Lock()
	defer pc.wmu.Unlock()
	_, err := pc.server.Write(frame)
	return err
}

func (pc *proxyConn) close() {
	pc.client.Close()
	pc.server.Close()
}

// frame reads one protocol line and, for the operations that carry one,
// its payload (with its trailing CRLF). fields are the line's fields.
func frame(r *bufio.Reader) (line []byte, fields []string, payload []byte, err error) {
	line, err = r.ReadBytes('\n')
	if err != nil {
		return nil, nil, nil, err
	}
	fields = strings.Fields(string(line))
	if len(fields) == 0 {
		return line, fields, nil, nil
	}
	switch strings.ToUpper(fields[0]) {
	case "PUB", "HPUB", "MSG", "HMSG":
		size, err := strconv.Atoi(fields[len(fields)-1])
		if err != nil || size < 0 || size > 64<<20 {
			return nil, nil, nil, fmt.Errorf("faultProxy: bad size in %q", line)
		}
		payload = make([]byte, size+2)
		if _, err := io.ReadFull(r, payload); err != nil {
			return nil, nil, nil, err
		}
	}
	return line, fields, payload, nil
}

// header returns the value of header key in an HPUB/HMSG payload whose
// header block is hdrLen bytes.
func header(payload []byte, hdrLen int, key string) string {
	for l := range strings.SplitSeq(string(payload[:hdrLen]), "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, key) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (pc *proxyConn) clientToServer() {
	p := pc.p
	defer pc.close()
	r := bufio.NewReader(pc.client)
	for {
		line, fields, payload, err := frame(r)
		if err != nil {
			return
		}
		op := ""
		if len(fields) > 0 {
			op = strings.ToUpper(fields[0])
		}
		fire, cutNow := false, false
		var after func()
		if (op == "PUB" || op == "HPUB") && len(fields) >= 3 {
			subject, reply := fields[1], ""
			hdrLen := 0
			if op == "PUB" && len(fields) == 4 {
				reply = fields[2]
			}
			if op == "HPUB" {
				if len(fields) == 5 {
					reply = fields[2]
				}
				hdrLen, _ = strconv.Atoi(fields[len(fields)-2])
				hdrLen = min(max(hdrLen, 0), len(payload)-2)
			}
			batch := ""
			if hdrLen > 0 {
				batch = header(payload, hdrLen, "Nats-Batch-Id")
			}
			p.mu.Lock()
			if p.watch != "" && strings.HasPrefix(subject, p.watch) {
				p.pubs++
				if !p.fired && p.pubs == p.n {
					fire, p.fired, p.batch, p.answered = true, true, batch, reply != ""
					after, p.after = p.after, nil
				} else if p.fired && p.forget && hdrLen > 0 && (batch == "" || batch != p.batch) {
					line, payload = forgetMsgID(fields, payload, hdrLen)
				}
			}
			kind := p.kind
			p.mu.Unlock()
			if fire && kind == faultHold {
				p.mu.Lock()
				p.held, p.heldReply, p.heldTo = append(append([]byte(nil), line...), payload...), reply, pc
				p.mu.Unlock()
				continue
			}
			if fire {
				if reply == "" && kind != faultCut {
					p.t.Errorf("faultProxy: publish %d asks for no answer to %v", p.n, kind)
				}
				if reply != "" {
					// Set before the publish goes on: the hook runs
					// when its answer comes.
					pc.mu.Lock()
					pc.dropTo, pc.cut, pc.garble, pc.foreign, pc.pass, pc.after = reply, kind == faultCut, garbage[kind], kind == faultForeign, kind == faultHook, after
					pc.mu.Unlock()
					after = nil
				} else {
					cutNow = kind == faultCut
				}
			}
		}
		if err := pc.toServer(append(line, payload...)); err != nil {
			return
		}
		if cutNow {
			if after != nil {
				after()
			}
			return
		}
	}
}

func (pc *proxyConn) serverToClient() {
	defer pc.close()
	r := bufio.NewReader(pc.server)
	for {
		line, fields, payload, err := frame(r)
		if err != nil {
			return
		}
		if len(fields) >= 2 {
			if op := strings.ToUpper(fields[0]); op == "MSG" || op == "HMSG" {
				p := pc.p
				p.mu.Lock()
				muted := p.muted != "" && strings.HasPrefix(fields[1], p.muted)
				p.mu.Unlock()
				if muted {
					continue
				}
				pc.mu.Lock()
				if pc.awaitTo != "" && fields[1] == pc.awaitTo {
					close(pc.awaited)
					pc.awaitTo, pc.awaited = "", nil
				}
				drop := pc.dropTo != "" && fields[1] == pc.dropTo
				cut, garble, foreign, pass, after := drop && pc.cut, pc.garble, pc.foreign, pc.pass, pc.after
				if drop {
					pc.dropTo, pc.after, pc.garble, pc.foreign, pc.pass = "", nil, "", false, false
				}
				pc.mu.Unlock()
				if drop {
					if after != nil {
						after()
					}
					if cut {
						return
					}
					if foreign {
						garble = strings.Replace(string(payload[:len(payload)-2]), `"stream":"`, `"stream":"ELSEWHERE_`, 1)
					}
					switch {
					case pass:
					case garble == "":
						continue
					default:
						line, payload = replaceAnswer(fields, garble)
					}
				}
			}
		}
		if _, err := pc.client.Write(append(line, payload...)); err != nil {
			return
		}
	}
}

// replaceAnswer returns a frame in place of the MSG or HMSG frame with
// fields: a MSG to the same subject, sid and reply carrying junk.
func replaceAnswer(fields []string, junk string) (line, payload []byte) {
	f := fields[:len(fields)-1]
	if strings.EqualFold(fields[0], "HMSG") {
		f = fields[:len(fields)-2]
	}
	f = append([]string{"MSG"}, f[1:]...)
	f = append(f, strconv.Itoa(len(junk)))
	return []byte(strings.Join(f, " ") + "\r\n"), []byte(junk + "\r\n")
}

// forgetMsgID rewrites an HPUB frame so its Nats-Msg-Id is another one.
func forgetMsgID(fields []string, payload []byte, hdrLen int) ([]byte, []byte) {
	hdr := payload[:hdrLen]
	i := bytes.Index(bytes.ToLower(hdr), []byte("nats-msg-id:"))
	if i < 0 {
		return []byte(strings.Join(fields, " ") + "\r\n"), payload
	}
	end := i + bytes.Index(hdr[i:], []byte("\r\n"))
	const suffix = "-forgotten"
	out := make([]byte, 0, len(payload)+len(suffix))
	out = append(out, payload[:end]...)
	out = append(out, suffix...)
	out = append(out, payload[end:]...)
	f := append([]string(nil), fields...)
	hl, _ := strconv.Atoi(f[len(f)-2])
	tl, _ := strconv.Atoi(f[len(f)-1])
	f[len(f)-2], f[len(f)-1] = strconv.Itoa(hl+len(suffix)), strconv.Itoa(tl+len(suffix))
	return []byte(strings.Join(f, " ") + "\r\n"), out
}

// connectVia returns a JetStream context through url that reconnects at
// once after a cut and gives up on an answer after timeout.
func connectVia(t testing.TB, url string, timeout time.Duration) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(time.Millisecond), nats.ReconnectJitter(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	return js
}
