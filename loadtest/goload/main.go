// Command goload is the execute benchmark's compiled load generator: it streams requests either
// straight from the provider simulator (OpenAI-compatible SSE over HTTP/1.1) or through
// modelroute's Dispatcher.Execute (gRPC server streaming), and prints one JSON line per phase
// with each request's time to first token, total time and text chunks, plus the CPU seconds
// that the routing process (-pid) used during the phase.
//
// Driving both paths from a compiled client keeps the client's own cost small on both sides, so
// the difference between them is what the router adds; loadtest/bench_execute.py runs it beside
// its Python client. Requests go only to the loopback addresses it is given, bounded in count.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
)

// sample is one request's outcome; field names match loadtest/bench_report.py's Sample.
type sample struct {
	TTFT   *float64 `json:"ttft_s"`
	Total  float64  `json:"total_s"`
	Chunks int      `json:"chunks"`
	Error  string   `json:"error"`
}

type phase struct {
	Concurrency int      `json:"concurrency"`
	Steady      bool     `json:"steady"`
	WallS       float64  `json:"wall_s"`
	CPUS        *float64 `json:"cpu_s"`
	Samples     []sample `json:"samples"`
}

type caller func(ctx context.Context, i int) sample

func main() {
	mode := flag.String("mode", "", "sse (straight from the simulator) or grpc (Dispatcher.Execute)")
	target := flag.String("target", "", "sse: the chat completions URL; grpc: host:port")
	body := flag.String("body", "", "file: the JSON body (sse) or a serialized DecideRequest without request_id (grpc)")
	phases := flag.String("phases", "", "comma-separated concurrency:n:ramp_s[:steady]")
	pid := flag.Int("pid", 0, "process whose CPU time is reported per phase (0: none)")
	conns := flag.Int("conns", 4, "grpc: client connections, used in turn")
	keyEnv := flag.String("key-env", "", "sse: environment variable holding a bearer token")
	flag.Parse()
	payload, err := os.ReadFile(*body)
	if err != nil {
		fail(err)
	}
	var call caller
	switch *mode {
	case "sse":
		call = sseCaller(*target, payload, os.Getenv(*keyEnv))
	case "grpc":
		call, err = grpcCaller(*target, payload, *conns)
	default:
		err = fmt.Errorf("-mode must be sse or grpc, not %q", *mode)
	}
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	for i := 0; i < 5; i++ { // warm up connections and caches
		if s := call(ctx, -1-i); s.Error != "" {
			fail(fmt.Errorf("warm-up request failed: %s", s.Error))
		}
	}
	enc := json.NewEncoder(os.Stdout)
	for _, spec := range strings.Split(*phases, ",") {
		p, err := parsePhase(spec)
		if err != nil {
			fail(err)
		}
		n, ramp := p.n, p.ramp
		out := phase{Concurrency: p.c, Steady: p.steady}
		cpu0, _ := cpuSeconds(*pid)
		t0 := time.Now()
		out.Samples = drive(ctx, call, n, p.c, ramp)
		out.WallS = time.Since(t0).Seconds()
		if cpu1, ok := cpuSeconds(*pid); ok {
			used := cpu1 - cpu0
			out.CPUS = &used
		}
		if err := enc.Encode(out); err != nil {
			fail(err)
		}
	}
}

type phaseSpec struct {
	c, n   int
	ramp   time.Duration
	steady bool
}

func parsePhase(spec string) (phaseSpec, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 3 {
		return phaseSpec{}, fmt.Errorf("phase %q: want concurrency:n:ramp_s[:steady]", spec)
	}
	c, err1 := strconv.Atoi(parts[0])
	n, err2 := strconv.Atoi(parts[1])
	r, err3 := strconv.ParseFloat(parts[2], 64)
	if err := errors.Join(err1, err2, err3); err != nil || c < 1 || n < 1 || r < 0 {
		return phaseSpec{}, fmt.Errorf("phase %q: bad numbers", spec)
	}
	steady := len(parts) > 3 && parts[3] == "steady"
	return phaseSpec{c, n, time.Duration(r * float64(time.Second)), steady}, nil
}

// drive runs n calls, at most c at once, the i-th starting no earlier than ramp*i/n.
func drive(ctx context.Context, call caller, n, c int, ramp time.Duration) []sample {
	out := make([]sample, n)
	sem := make(chan struct{}, c)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if ramp > 0 {
			if d := time.Until(t0.Add(ramp * time.Duration(i) / time.Duration(n))); d > 0 {
				time.Sleep(d)
			}
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out[i] = call(ctx, i)
			<-sem
		}(i)
	}
	wg.Wait()
	return out
}

func seconds(d time.Duration) *float64 {
	v := d.Seconds()
	return &v
}

// -- straight from the simulator ------------------------------------------------------------

type chunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
}

func sseCaller(url string, payload []byte, key string) caller {
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 2000, MaxConnsPerHost: 0, DisableCompression: true,
		ForceAttemptHTTP2: false,
	}, Timeout: 120 * time.Second}
	return func(ctx context.Context, _ int) (s sample) {
		t0 := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
		if err != nil {
			return sample{Error: err.Error()}
		}
		req.Header.Set("content-type", "application/json")
		if key != "" {
			req.Header.Set("authorization", "Bearer "+key)
		}
		resp, err := client.Do(req)
		if err != nil {
			return sample{Error: "http: " + err.Error()}
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			_, _ = io.Copy(io.Discard, resp.Body)
			return sample{Error: "http status " + strconv.Itoa(resp.StatusCode)}
		}
		r := bufio.NewReaderSize(resp.Body, 16<<10)
		for {
			line, err := r.ReadSlice('\n')
			if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				data = bytes.TrimSpace(data)
				if !bytes.Equal(data, []byte("[DONE]")) {
					var c chunk
					if json.Unmarshal(data, &c) == nil && len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
						s.Chunks++
						if s.TTFT == nil {
							s.TTFT = seconds(time.Since(t0))
						}
					}
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				s.Error = "read: " + err.Error()
				break
			}
		}
		s.Total = time.Since(t0).Seconds()
		return s
	}
}

// -- through Dispatcher.Execute ---------------------------------------------------------------

// rawCodec passes bytes through: requests are built and events read with protowire, so the
// client needs no generated code.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append((*(v.(*[]byte)))[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

const (
	executeMethod  = "/modelroute.v1.Dispatcher/Execute"
	fieldDelta     = 12 // ExecuteEvent.delta
	fieldCompleted = 16 // ExecuteEvent.completed
	fieldFailed    = 17 // ExecuteEvent.failed
)

var requestSeq atomic.Uint64

// executeRequest is ExecuteRequest{request: DecideRequest{request_id: a fresh id, ...decide}}.
func executeRequest(decide []byte) []byte {
	id := fmt.Sprintf("goload-%d-%d", os.Getpid(), requestSeq.Add(1))
	inner := protowire.AppendTag(nil, 1, protowire.BytesType)
	inner = protowire.AppendString(inner, id)
	inner = append(inner, decide...)
	out := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(out, inner)
}

// eventKind returns the number of the ExecuteEvent oneof field that is set, and for a failed
// event its error class.
func eventKind(msg []byte) (kind protowire.Number, errClass uint64) {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return 0, 0
		}
		msg = msg[n:]
		m := protowire.ConsumeFieldValue(num, typ, msg)
		if m < 0 {
			return 0, 0
		}
		if num >= 10 && typ == protowire.BytesType {
			kind = num
			if num == fieldFailed {
				v, _ := protowire.ConsumeBytes(msg)
				errClass = failedClass(v)
			}
		}
		msg = msg[m:]
	}
	return kind, errClass
}

func failedClass(v []byte) uint64 {
	for len(v) > 0 {
		num, typ, n := protowire.ConsumeTag(v)
		if n < 0 {
			return 0
		}
		v = v[n:]
		if num == 1 && typ == protowire.VarintType {
			c, _ := protowire.ConsumeVarint(v)
			return c
		}
		m := protowire.ConsumeFieldValue(num, typ, v)
		if m < 0 {
			return 0
		}
		v = v[m:]
	}
	return 0
}

func grpcCaller(target string, decide []byte, conns int) (caller, error) {
	pool := make([]*grpc.ClientConn, conns)
	for i := range pool {
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		pool[i] = cc
	}
	desc := &grpc.StreamDesc{ServerStreams: true}
	var next atomic.Uint64
	return func(ctx context.Context, _ int) (s sample) {
		cc := pool[next.Add(1)%uint64(len(pool))]
		ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
		defer cancel()
		t0 := time.Now()
		req := executeRequest(decide)
		st, err := cc.NewStream(ctx, desc, executeMethod, grpc.ForceCodec(rawCodec{}))
		if err == nil {
			err = st.SendMsg(&req)
		}
		if err == nil {
			err = st.CloseSend()
		}
		if err != nil {
			return sample{Error: "rpc: " + err.Error()}
		}
		var buf []byte
		terminal := false
		for {
			if err := st.RecvMsg(&buf); err != nil {
				if err != io.EOF {
					s.Error = "rpc: " + err.Error()
				}
				break
			}
			switch kind, class := eventKind(buf); kind {
			case fieldDelta:
				s.Chunks++
				if s.TTFT == nil {
					s.TTFT = seconds(time.Since(t0))
				}
			case fieldCompleted:
				terminal = true
			case fieldFailed:
				terminal = true
				s.Error = "failed, error class " + strconv.FormatUint(class, 10)
			}
		}
		s.Total = time.Since(t0).Seconds()
		if !terminal && s.Error == "" {
			s.Error = "no terminal event"
		}
		return s
	}, nil
}

// cpuSeconds reads user + system CPU time of pid from /proc (Linux; USER_HZ is 100 there).
func cpuSeconds(pid int) (float64, bool) {
	if pid <= 0 {
		return 0, false
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(raw, ')')
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	k, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return (u + k) / 100, true
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "goload:", err)
	os.Exit(2)
}
