// evil_peer: a memport peer that misbehaves on purpose, written from
// docs/PROTOCOL.md at the raw socket / pipe level (no memport code), for
// test/adversarial.test.mjs.
//
//   evil_peer <scenario> <address> [args...]
//
// <address> is what channelAddress(name) returns: a socket path on Linux, a
// pipe name on Windows. Client scenarios connect, read the WELCOME, misbehave,
// then report what the listener did; listen-* scenarios play a listener at
// <address>; scan-* scenarios look at this process itself.
//
// Output: one event per line on stdout, flushed at once: "WELCOME", "SENT",
// "ACK <seq>", "NACK <seq> <json>", "EOF" (the other side dropped us),
// "TIMEOUT", ... "ERROR <what>" with exit status 2 means the scenario could not
// be set up (a bug in the test, not a finding about memport).
//
// Windows scenarios that put foreign handles (an Event, a file section...)
// into the receiver's table print "HOLDING <n>" once they were dropped and
// wait for stdin to close; then they check that every value still names the
// very object they planted ("KEPT <k> of <n>": memport must not close a value
// that is not what was promised) and take them back with
// DUPLICATE_CLOSE_SOURCE ("REVOKED <k> of <n>"), so that the receiver's
// handle census can return to its baseline.
//
// Layout: protocol helpers and the scenarios both OSes share first; the one
// platform split (#ifdef _WIN32) holds the transport, regions, and the
// scenarios only one OS has; main() last.

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00
#endif
#include <windows.h>
#include <sddl.h>
#else
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#endif

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Reporting

static void say(const char* format, ...) {
  va_list args;
  va_start(args, format);
  vprintf(format, args);
  va_end(args);
  putchar('\n');
  fflush(stdout);
}

static void die(const char* format, ...) {
  va_list args;
  printf("ERROR ");
  va_start(args, format);
  vprintf(format, args);
  va_end(args);
  putchar('\n');
  fflush(stdout);
  exit(2);
}

// ---------------------------------------------------------------------------
// The wire format (docs/PROTOCOL.md section 2)

enum { WELCOME = 1, REJECT = 2, MESSAGE = 3, ACK = 4, NACK = 5 };
#define MAGIC 0x5452504Du  // "MPRT" read as a little-endian u32
#define HEADER 16
#define DESCRIPTOR 16
#define MAX_REGIONS 64
#define MAX_DATA (128u * 1024u)
#define MAX_FRAME (HEADER + DESCRIPTOR * MAX_REGIONS + MAX_DATA)
#define READ_ONLY 1u
#define NAMED 2u  /* the region is named memory (frame.h kRegionNamed) */
#define NOTIFIER 4u  /* the descriptor carries a notifier, size 0 (frame.h kDescriptorNotifier) */
#define STREAM 8u    /* the descriptor is a stream reader's member (frame.h kDescriptorStream) */

typedef struct {
  uint8_t* bytes;
  size_t length;
  size_t capacity;
} Buf;

static void put(Buf* b, const void* data, size_t n) {
  if (b->length + n > b->capacity) {
    size_t capacity = b->capacity ? b->capacity : 256;
    while (capacity < b->length + n) capacity *= 2;
    b->bytes = (uint8_t*)realloc(b->bytes, capacity);
    if (b->bytes == NULL) die("out of memory");
    b->capacity = capacity;
  }
  if (n) memcpy(b->bytes + b->length, data, n);
  b->length += n;
}

static void put_le(Buf* b, uint64_t v, int width) {
  uint8_t out[8];
  for (int i = 0; i < width; ++i) out[i] = (uint8_t)(v >> (8 * i));
  put(b, out, (size_t)width);
}

static uint32_t get_u32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24); }
static uint64_t get_u64(const uint8_t* p) { return get_u32(p) | ((uint64_t)get_u32(p + 4) << 32); }

static Buf raw_header(uint32_t magic, uint8_t version, uint8_t type, uint16_t regions, uint32_t seq, uint32_t data) {
  Buf b = {0};
  put_le(&b, magic, 4);
  put_le(&b, version, 1);
  put_le(&b, type, 1);
  put_le(&b, regions, 2);
  put_le(&b, seq, 4);
  put_le(&b, data, 4);
  return b;
}

static Buf header(uint8_t type, uint16_t regions, uint32_t seq, uint32_t data) {
  return raw_header(MAGIC, 1, type, regions, seq, data);
}

static void descriptor(Buf* b, uint64_t size, uint32_t flags, uint32_t handle) {
  put_le(b, size, 8);
  put_le(b, flags, 4);
  put_le(b, handle, 4);
}

// A whole MESSAGE frame around already-written descriptors is built by the
// scenarios; this one carries text data and nothing else.
static Buf text_frame(uint8_t type, uint32_t seq, const char* text) {
  Buf b = header(type, 0, seq, (uint32_t)strlen(text));
  put(&b, text, strlen(text));
  return b;
}

// ---------------------------------------------------------------------------
// What each OS provides (defined in the platform section below)

typedef struct Region Region;
enum { RX_EOF = -1, RX_TIMEOUT = -2 };
static uint8_t g_rx[MAX_FRAME + 4096];

// Client side: connects to a memport listener (dies if it cannot).
static void connect_to(const char* address);
// Listener side: listens at `address` (owned by us), says LISTENING, accepts one client.
static void listen_and_accept(const char* address);
// Sends one packet / pipe message, with the handles queued by share_region().
// Returns 0, or -1 (and says why) if the OS refused.
static int send_raw(const void* bytes, size_t n);
// Receives one packet / message: its length, RX_EOF or RX_TIMEOUT.
static long receive_raw(int timeout_ms);
// A region made as memport makes them (sealed memfd / pagefile section) of
// `size` bytes, every byte `fill`.
static Region* make_region(uint64_t size, uint8_t fill);
// The memfd name make_region gives (Linux): a scenario whose regions a test
// must count apart from everything else in the receiver sets its own.
static const char* g_region_label = "evil-good";
// Queues (Linux: SCM_RIGHTS) or duplicates into the peer (Windows) the region
// for the next send_raw, as memport's sender would; returns the descriptor's
// handle field.
static uint32_t share_region(Region* region, int read_only);
// Maps the region that descriptor `index` of the frame in g_rx names (a frame
// memport sent us), reports its first byte, and releases it.
static void take_received_region(const uint8_t* frame, int index);
// Closes whatever handles the last received frame brought (Linux fds).
static void drop_received_handles(void);
// Windows: waits for stdin to close, then takes back the foreign handles put
// into the peer (see the file comment). Linux: nothing to do.
static void hold_then_revoke(void);
// Windows: the values share_region() put into the peer for a frame the peer
// cannot even decode are still ours to take back (it must never have touched
// them). Linux: nothing to do (fds travel with the packet and are the
// receiver's to close).
static void hold_shared(void);
// Windows: how many of the section values this process duplicated into the
// peer (the first MAX_REGIONS) still name that section there ("PLANTED k of n");
// nothing on Linux, where fds travel with the frame.
static void report_planted(void);
static void sleep_ms(int ms);
static void wait_for_stdin_eof(void);
// Starts a second process that keeps this connection open after we exit and
// runs hold_until_hangup() (Linux: fork; Windows: this program again, given
// an inherited pipe handle).
static void hand_off_connection(void);
// Scenarios only one OS has; returns 0 for a name it does not know.
static int platform_scenario(const char* name, const char* address, int argc, char** argv);

// ---------------------------------------------------------------------------
// Conversation helpers shared by the scenarios

static uint8_t frame_type(void) { return g_rx[5]; }
static uint32_t frame_seq(void) { return get_u32(g_rx + 8); }
static uint16_t frame_regions(void) { return (uint16_t)(g_rx[6] | (g_rx[7] << 8)); }
static uint32_t frame_data_length(void) { return get_u32(g_rx + 12); }

// In the process a connection was handed to: reads until the listener hangs
// up ("HOLDER EOF"), saying "HOLDER WELCOME" if it was admitted after all.
static void hold_until_hangup(void) {
  for (;;) {
    const long n = receive_raw(60000);
    if (n == RX_EOF || n == RX_TIMEOUT) {
      say(n == RX_EOF ? "HOLDER EOF" : "HOLDER TIMEOUT");
      return;
    }
    if (n >= HEADER && get_u32(g_rx) == MAGIC && frame_type() == WELCOME) say("HOLDER WELCOME");
  }
}

static void expect_welcome(void) {
  long n = receive_raw(10000);
  if (n < HEADER || get_u32(g_rx) != MAGIC || frame_type() != WELCOME) die("no WELCOME from the listener (%ld)", n);
  say("WELCOME");
}

static void send_or_report(const Buf* b) {
  if (send_raw(b->bytes, b->length) == 0) say("SENT %lu", (unsigned long)b->length);
}

// Prints one frame the other side sent. MESSAGE frames are answered with an
// ACK when `ack_messages` (their regions taken and released first).
static void report_frame(long n, int ack_messages) {
  if (n < HEADER) {
    say("FRAME short %ld", n);
    return;
  }
  const uint32_t data = frame_data_length();
  const char* text = (const char*)g_rx + HEADER + DESCRIPTOR * frame_regions();
  switch (frame_type()) {
    case ACK:
      say("ACK %u", frame_seq());
      break;
    case NACK:
      say("NACK %u %.*s", frame_seq(), (int)data, text);
      break;
    case REJECT:
      say("REJECT %.*s", (int)data, text);
      break;
    case WELCOME:
      say("WELCOME");
      break;
    case MESSAGE: {
      say("MESSAGE %u regions %u data %.*s", frame_seq(), frame_regions(), (int)data, text);
      for (int i = 0; i < frame_regions(); ++i) take_received_region(g_rx, i);
      if (ack_messages) {
        Buf ack = header(ACK, 0, frame_seq(), 0);
        send_raw(ack.bytes, ack.length);
        free(ack.bytes);
      }
      break;
    }
    default:
      say("FRAME type %u", frame_type());
  }
  drop_received_handles();
}

// Reads until the other side drops us: 1 after "EOF", 0 after "TIMEOUT".
static int drain(int timeout_ms, int ack_messages) {
  for (;;) {
    long n = receive_raw(timeout_ms);
    if (n == RX_EOF) {
      say("EOF");
      return 1;
    }
    if (n == RX_TIMEOUT) {
      say("TIMEOUT");
      return 0;
    }
    report_frame(n, ack_messages);
  }
}

static void attack_and_drain(Buf b) {
  send_or_report(&b);
  free(b.bytes);
  drain(15000, 0);
  hold_then_revoke();
}

// A well-formed MESSAGE carrying one fresh region (pattern `fill`) and `json`.
static Buf good_message(uint32_t seq, uint64_t size, uint8_t fill, int read_only, const char* json, uint32_t flags_extra,
                        uint64_t declared_size) {
  Region* region = make_region(size, fill);
  Buf b = header(MESSAGE, 1, seq, (uint32_t)strlen(json));
  descriptor(&b, declared_size, (read_only ? READ_ONLY : 0) | flags_extra, share_region(region, read_only));
  put(&b, json, strlen(json));
  return b;
}

static uint64_t arg_u64(int argc, char** argv, int i, uint64_t fallback) {
  return i < argc ? strtoull(argv[i], NULL, 0) : fallback;
}

// ---------------------------------------------------------------------------
// Scenarios both OSes share: a client that breaks the protocol

static void frame_attack(const char* scenario, int argc, char** argv) {
  Buf b = {0};
  if (!strcmp(scenario, "garbage")) {
    for (int i = 0; i < 100; ++i) put_le(&b, (uint8_t)(i * 31 + 5), 1);
  } else if (!strcmp(scenario, "short")) {
    b = header(MESSAGE, 0, 1, 0);
    b.length = 10;  // a header cut short
  } else if (!strcmp(scenario, "header-only")) {
    b = header(MESSAGE, 0, 1, 20);  // promises 20 bytes of data, carries none
  } else if (!strcmp(scenario, "eof-mid-frame")) {
    // Half a frame, then gone at once (no drain): the listener sees a short
    // frame followed by EOF.
    b = header(MESSAGE, 0, 1, 20);
    put(&b, "{\"a\":", 5);
    send_or_report(&b);
    exit(0);
  } else if (!strcmp(scenario, "data-length-max")) {
    b = header(MESSAGE, 0, 1, 0xFFFFFFFFu);
    put(&b, "\"x\"!", 4);
  } else if (!strcmp(scenario, "data-length-zero-trailing")) {
    b = header(MESSAGE, 0, 1, 0);
    put(&b, "\"hidden\"", 8);
  } else if (!strcmp(scenario, "data-length-zero")) {
    b = header(MESSAGE, 0, 1, 0);  // legal: a message with no data (control case)
  } else if (!strcmp(scenario, "regions-65")) {
    b = header(MESSAGE, 65, 1, 0);
    for (uint32_t i = 0; i < 65; ++i) descriptor(&b, 4096, 0, i);
  } else if (!strcmp(scenario, "regions-max")) {
    b = header(MESSAGE, 0xFFFF, 1, 0);
  } else if (!strcmp(scenario, "bad-magic")) {
    b = raw_header(0x4D50525Au, 1, MESSAGE, 0, 1, 2);
    put(&b, "{}", 2);
  } else if (!strcmp(scenario, "version-2")) {
    b = raw_header(MAGIC, 2, MESSAGE, 0, 1, 2);
    put(&b, "{}", 2);
  } else if (!strcmp(scenario, "version-0")) {
    b = raw_header(MAGIC, 0, MESSAGE, 0, 1, 2);
    put(&b, "{}", 2);
  } else if (!strncmp(scenario, "type-", 5)) {
    b = header((uint8_t)atoi(scenario + 5), 0, 1, 0);
  } else if (!strcmp(scenario, "ack-unknown")) {
    b = header(ACK, 0, 77, 0);
  } else if (!strcmp(scenario, "nack-unknown")) {
    b = text_frame(NACK, 77, "{\"code\":\"OS\",\"message\":\"never sent\"}");
  } else if (!strcmp(scenario, "welcome-from-client")) {
    b = header(WELCOME, 0, 0, 0);
  } else if (!strcmp(scenario, "reject-from-client")) {
    b = text_frame(REJECT, 0, "no thanks");
  } else if (!strcmp(scenario, "ack-with-data")) {
    b = text_frame(ACK, 1, "{}");
  } else if (!strcmp(scenario, "regions-on-ack")) {
    b = header(ACK, 1, 1, 0);
    descriptor(&b, 4096, 0, 0);
  } else if (!strcmp(scenario, "bad-flags")) {
    b = good_message(1, 4096, 7, 0, "1", 0x10, 4096);  /* bits 1-3 are named, notifier, stream member; bit 4 is unknown */
    hold_shared();
  } else if (!strcmp(scenario, "region-size-zero")) {
    b = good_message(1, 4096, 7, 0, "1", 0, 0);
    hold_shared();
  } else if (!strcmp(scenario, "region-size-huge")) {
    b = good_message(1, 4096, 7, 0, "1", 0, (1ull << 47) + 1);
    hold_shared();
  } else if (!strcmp(scenario, "deep-json")) {
    // Valid JSON nested 65,536 deep, the whole data cap: a recursive parser would overflow its stack.
    b = header(MESSAGE, 0, 1, MAX_DATA);
    for (uint32_t i = 0; i < MAX_DATA / 2; ++i) put(&b, "[", 1);
    for (uint32_t i = 0; i < MAX_DATA / 2; ++i) put(&b, "]", 1);
  } else if (!strcmp(scenario, "not-json")) {
    b = text_frame(MESSAGE, 1, "{not json");
  } else if (!strcmp(scenario, "not-utf8")) {
    b = text_frame(MESSAGE, 1, "\"\xff\xfe\"");
  } else if (!strcmp(scenario, "oversize")) {
    b = header(MESSAGE, 0, 1, MAX_DATA);
    while (b.length < 150000) put(&b, "xxxxxxxxxxxxxxxx", 16);
  } else if (!strcmp(scenario, "cap-plus-one")) {
    // A header that matches a maximal frame, one byte too long.
    b = header(MESSAGE, 0, 1, MAX_DATA);
    while (b.length < MAX_FRAME + 1) put(&b, "x", 1);
  } else if (!strcmp(scenario, "empty")) {
    // A zero-length packet / message.
  } else {
    die("unknown frame attack %s", scenario);
  }
  (void)argc;
  (void)argv;
  attack_and_drain(b);
}

// The whole of a valid frame, one byte per packet / message.
static void bytewise(void) {
  Buf b = text_frame(MESSAGE, 1, "42");
  size_t sent = 0;
  for (; sent < b.length; ++sent) {
    if (send_raw(b.bytes + sent, 1) != 0) break;
  }
  say("SENT %lu of %lu single bytes", (unsigned long)sent, (unsigned long)b.length);
  free(b.bytes);
  drain(15000, 0);
}

// More MESSAGE frames than the window allows, without waiting for any ACK.
static void flood(int count) {
  int sent = 0;
  for (int i = 1; i <= count; ++i) {
    char json[32];
    snprintf(json, sizeof json, "%d", i);
    Buf b = text_frame(MESSAGE, (uint32_t)i, json);
    const int ok = send_raw(b.bytes, b.length) == 0;
    free(b.bytes);
    if (!ok) break;
    ++sent;
  }
  say("FLOODED %d", sent);
  drain(30000, 0);
}

// MESSAGE frame `seq` with `regions` regions of `size` bytes (one region,
// shared `regions` times: each is its own handle at the receiver) and
// `data_length` bytes of JSON: an array of zeros ("[0,0,...]", which a JSON
// parser turns into many times its size) or, with `zeros` 0, one string.
static Buf bulk_message(uint32_t seq, Region* region, uint64_t size, int regions, uint32_t data_length, int zeros) {
  if (data_length < 3) data_length = 0;
  Buf b = header(MESSAGE, (uint16_t)regions, seq, data_length);
  for (int i = 0; i < regions; ++i) descriptor(&b, size, 0, share_region(region, 0));
  if (data_length >= 3) {
    // "[0,0,...,0   ]" or "\"xx...x\"", exactly data_length bytes.
    char* json = (char*)malloc(data_length);
    memset(json, zeros ? ' ' : 'x', data_length);
    json[0] = zeros ? '[' : '"';
    json[data_length - 1] = zeros ? ']' : '"';
    if (zeros) {
      uint32_t i = 1;
      for (; i + 3 < data_length; i += 2) {
        json[i] = '0';
        json[i + 1] = ',';
      }
      json[i] = '0';
    }
    put(&b, json, data_length);
    free(json);
  }
  return b;
}

// Sends `count` bulk MESSAGE frames (bulk_message) without waiting for any
// answer; returns how many the OS took before refusing one.
static int send_bulk(int count, Region* region, uint64_t size, int regions, uint32_t data, int zeros) {
  int sent = 0;
  for (int i = 1; i <= count; ++i) {
    Buf b = bulk_message((uint32_t)i, region, size, regions, data, zeros);
    const int ok = send_raw(b.bytes, b.length) == 0;
    free(b.bytes);
    if (!ok) break;
    ++sent;
  }
  return sent;
}

// Before any WELCOME (so before the listener has decided): `count` MESSAGE
// frames, each with `regions` regions of `size` bytes and `data` bytes of
// JSON. Then reports what the listener answers ("REJECT ...", "EOF").
static void pre_welcome(int argc, char** argv) {
  const int count = (int)arg_u64(argc, argv, 0, 16);
  const int regions = (int)arg_u64(argc, argv, 1, 4);
  const uint64_t size = arg_u64(argc, argv, 2, 1 << 20);
  const uint32_t data = (uint32_t)arg_u64(argc, argv, 3, 1024);
  g_region_label = "evil-early";  // memfd:evil-early: counted apart by the test
  Region* region = make_region(size, 0);
  say("PRE-WELCOME SENT %d", send_bulk(count, region, size, regions, data, 1));
  drain(20000, 0);
  report_planted();
}

// Admitted: `count` MESSAGE frames (as in pre_welcome, region fill 0: sparse
// on Linux) without waiting for any answer, then reports every ACK/NACK
// until the listener hangs up. `zeros` 1: the data is an array of zeros.
static void unreceived(int argc, char** argv) {
  const int count = (int)arg_u64(argc, argv, 0, 256);
  const int regions = (int)arg_u64(argc, argv, 1, 1);
  const uint64_t size = arg_u64(argc, argv, 2, 4096);
  const uint32_t data = (uint32_t)arg_u64(argc, argv, 3, 0);
  const int zeros = (int)arg_u64(argc, argv, 4, 0);
  g_region_label = "evil-unreceived";  // memfd:evil-unreceived: counted apart by the test
  Region* region = make_region(size, 0);
  say("SENT-ALL %d", send_bulk(count, region, size, regions, data, zeros));
  drain(30000, 0);
  report_planted();
}

// Admitted: for each line on stdin, one MESSAGE carrying `regions` regions of
// 4096 bytes (one memfd/section, shared that many times) and no data; then
// reads until the answer to it (ACK or NACK, reported). At stdin EOF, drains.
static void send_per_line(int argc, char** argv) {
  const int regions = (int)arg_u64(argc, argv, 0, 2);
  Region* region = make_region(4096, 0x21);
  char line[64];
  uint32_t seq = 0;
  while (fgets(line, sizeof line, stdin) != NULL) {
    Buf b = bulk_message(++seq, region, 4096, regions, 0, 0);
    send_or_report(&b);
    free(b.bytes);
    for (;;) {
      const long n = receive_raw(30000);
      if (n == RX_EOF || n == RX_TIMEOUT) {
        say(n == RX_EOF ? "EOF" : "TIMEOUT");
        return;
      }
      report_frame(n, 0);
      if ((frame_type() == ACK || frame_type() == NACK) && frame_seq() == seq) break;
    }
  }
  drain(30000, 0);
}

// Admitted: tiny MESSAGE frames, `count` of them, as fast as the socket takes
// them, and never reads a thing (so every ACK it is owed piles up).
static void no_read(int argc, char** argv) {
  const int count = (int)arg_u64(argc, argv, 0, 100000);
  int sent = 0;
  for (int i = 1; i <= count; ++i) {
    Buf b = text_frame(MESSAGE, (uint32_t)i, "1");
    const int ok = send_raw(b.bytes, b.length) == 0;
    free(b.bytes);
    if (!ok) break;
    ++sent;
  }
  say("NO-READ SENT %d", sent);
  wait_for_stdin_eof();
}

// A well-behaved client (the control case, and "the listener still serves"):
// sends a region filled with `fill` and {"good":<fill>}, takes the ACK, then
// takes one MESSAGE the listener sends back (mapping its regions) and ACKs it.
static void good(int argc, char** argv) {
  const uint64_t size = arg_u64(argc, argv, 0, 4096);
  const uint8_t fill = (uint8_t)arg_u64(argc, argv, 1, 0x5A);
  const int read_only = argc > 2 && !strcmp(argv[2], "ro");
  char json[64];
  snprintf(json, sizeof json, "{\"good\":%u}", fill);
  Buf b = good_message(1, size, fill, read_only, json, 0, size);
  send_or_report(&b);
  free(b.bytes);
  drain(20000, /*ack_messages=*/1);
}

// Sends a good message, then stays until killed (or exits at once with "exit").
static void send_then(int argc, char** argv, int exit_at_once) {
  const uint8_t fill = (uint8_t)arg_u64(argc, argv, 0, 0x77);
  Buf b = good_message(1, 8192, fill, 0, "{\"last\":\"words\"}", 0, 8192);
  send_or_report(&b);
  free(b.bytes);
  if (exit_at_once) exit(0);
  for (;;) sleep_ms(1000);
}

// Takes one MESSAGE from the listener and never acknowledges it; waits to be killed.
static void take_and_wait(void) {
  long n = receive_raw(20000);
  if (n < HEADER) die("no MESSAGE to take (%ld)", n);
  say("GOT type %u seq %u regions %u", frame_type(), frame_seq(), frame_regions());
  for (;;) sleep_ms(1000);
}

// Takes one MESSAGE from the listener and answers it with a lie: "ack-twice"
// acknowledges it twice; "nack <data>" refuses it with that NACK body.
static void take_and_answer(int argc, char** argv) {
  long n = receive_raw(20000);
  if (n < HEADER || frame_type() != MESSAGE) die("no MESSAGE to answer (%ld)", n);
  const uint32_t seq = frame_seq();
  say("GOT seq %u regions %u", seq, frame_regions());
  drop_received_handles();
  if (argc > 0 && !strcmp(argv[0], "nack")) {
    Buf nack = text_frame(NACK, seq, argc > 1 ? argv[1] : "");
    send_or_report(&nack);
  } else {
    Buf ack = header(ACK, 0, seq, 0);
    send_or_report(&ack);
    send_or_report(&ack);
  }
  drain(20000, 0);
}

// ---------------------------------------------------------------------------
// Scenarios both OSes share: a listener that breaks the protocol (memport
// connects to it). The client must refuse it without sending anything.

static void evil_listener(const char* scenario, const char* address) {
  listen_and_accept(address);
  if (!strcmp(scenario, "listen-message-first")) {
    Buf b = good_message(1, 4096, 0x33, 0, "\"before welcome\"", 0, 4096);
    send_or_report(&b);
    free(b.bytes);
  } else if (!strcmp(scenario, "listen-reject-garbage")) {
    Buf reject = text_frame(REJECT, 0, "go away");
    send_or_report(&reject);
    Buf junk = {0};
    for (int i = 0; i < 40; ++i) put_le(&junk, (uint8_t)(i * 13 + 1), 1);
    send_or_report(&junk);
  } else if (!strcmp(scenario, "listen-silent")) {
    // Say nothing at all; the client must give up on its own (TIMEOUT).
  } else if (!strcmp(scenario, "listen-welcome-twice")) {
    Buf welcome = header(WELCOME, 0, 0, 0);
    send_or_report(&welcome);
    send_or_report(&welcome);
  } else if (!strcmp(scenario, "listen-welcome-garbage")) {
    Buf welcome = header(WELCOME, 0, 0, 0);
    send_or_report(&welcome);
    Buf junk = raw_header(0xDEADBEEFu, 9, 99, 3, 1, 0);
    send_or_report(&junk);
  } else {
    die("unknown listener scenario %s", scenario);
  }
  drain(30000, 0);
}

// ===========================================================================
// The platform split
// ===========================================================================

#ifdef _WIN32

// --- Windows: named pipes; handles travel by DuplicateHandle into the peer.

static HANDLE g_pipe = INVALID_HANDLE_VALUE;
static HANDLE g_peer_process = NULL;  // PROCESS_DUP_HANDLE on the other side
static DWORD g_peer_pid = 0;
// Foreign handles put into the peer that memport must leave alone (taken
// back in hold_then_revoke), and our own handles to the same objects.
static uint32_t g_held[256];
static HANDLE g_held_source[256];
static int g_held_count = 0;

struct Region {
  HANDLE section;
  uint64_t size;
};

static void sleep_ms(int ms) { Sleep((DWORD)ms); }

static void wait_for_stdin_eof(void) {
  char line[256];
  while (fgets(line, sizeof line, stdin) != NULL) {
  }
}

static void open_peer_process(void) {
  g_peer_process = OpenProcess(PROCESS_DUP_HANDLE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, g_peer_pid);
  if (g_peer_process == NULL) die("OpenProcess(%lu) failed: %lu", g_peer_pid, GetLastError());
}

// Starts this program again as "evil_peer <args>", inheriting every
// inheritable handle (as libuv starts children), with `out` as its stdout and
// stderr and `in` (may be NULL) as its stdin. Returns its process handle.
static HANDLE start_self(const char* args, HANDLE out, HANDLE in) {
  char exe[MAX_PATH];
  if (GetModuleFileNameA(NULL, exe, sizeof exe) == 0) die("GetModuleFileName: %lu", GetLastError());
  char command[MAX_PATH + 128];
  snprintf(command, sizeof command, "\"%s\" %s", exe, args);
  STARTUPINFOA startup;
  memset(&startup, 0, sizeof startup);
  startup.cb = sizeof startup;
  startup.dwFlags = STARTF_USESTDHANDLES;
  startup.hStdOutput = out;
  startup.hStdError = out;
  startup.hStdInput = in;
  PROCESS_INFORMATION started;
  if (!CreateProcessA(NULL, command, NULL, NULL, /*bInheritHandles=*/TRUE, 0, NULL, NULL, &startup, &started)) {
    die("CreateProcess(%s): %lu", command, GetLastError());
  }
  CloseHandle(started.hThread);
  return started.hProcess;
}

// Starts "evil_peer <scenario> - <g_pipe>" with g_pipe inherited, our stdout as its own.
static void spawn_pipe_holder(const char* scenario) {
  if (!SetHandleInformation(g_pipe, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT)) die("SetHandleInformation: %lu", GetLastError());
  HANDLE out = NULL;
  if (!DuplicateHandle(GetCurrentProcess(), GetStdHandle(STD_OUTPUT_HANDLE), GetCurrentProcess(), &out, 0, TRUE,
                       DUPLICATE_SAME_ACCESS)) {
    die("DuplicateHandle(stdout): %lu", GetLastError());
  }
  char args[96];
  snprintf(args, sizeof args, "%s - %lu", scenario, (unsigned long)(uintptr_t)g_pipe);
  CloseHandle(start_self(args, out, NULL));
  CloseHandle(out);
}

static void hand_off_connection(void) { spawn_pipe_holder("hold-pipe"); }

static void connect_to(const char* address) {
  for (int attempt = 0; attempt < 500; ++attempt) {
    g_pipe = CreateFileA(address, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                         SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
    if (g_pipe != INVALID_HANDLE_VALUE) break;
    const DWORD err = GetLastError();
    if (err == ERROR_PIPE_BUSY) {
      WaitNamedPipeA(address, 100);
    } else if (err == ERROR_FILE_NOT_FOUND) {
      Sleep(20);
    } else {
      die("CreateFile(%s) failed: %lu", address, err);
    }
  }
  if (g_pipe == INVALID_HANDLE_VALUE) die("could not connect to %s", address);
  DWORD mode = PIPE_READMODE_MESSAGE;
  if (!SetNamedPipeHandleState(g_pipe, &mode, NULL, NULL)) die("SetNamedPipeHandleState: %lu", GetLastError());
  ULONG pid = 0;
  if (!GetNamedPipeServerProcessId(g_pipe, &pid)) die("GetNamedPipeServerProcessId: %lu", GetLastError());
  g_peer_pid = pid;
  open_peer_process();
}

// "O:<sid>" owner strings: our own user's SID, or a well-known one.
static void own_sid(char* out, size_t cap) {
  HANDLE token = NULL;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) die("OpenProcessToken: %lu", GetLastError());
  DWORD buffer[128];
  DWORD needed = 0;
  if (!GetTokenInformation(token, TokenUser, buffer, sizeof buffer, &needed)) die("GetTokenInformation: %lu", GetLastError());
  CloseHandle(token);
  char* text = NULL;
  if (!ConvertSidToStringSidA(((TOKEN_USER*)buffer)->User.Sid, &text)) die("ConvertSidToStringSid: %lu", GetLastError());
  snprintf(out, cap, "%s", text);
  LocalFree(text);
}

// Creates one instance of a message pipe at `address`, owned by `owner`
// ("me" or an SDDL SID string such as "SY"), overlapped if asked.
static HANDLE create_pipe(const char* address, const char* owner, int overlapped) {
  char sid[256];
  char sddl[700];
  if (!strcmp(owner, "me")) {
    own_sid(sid, sizeof sid);
    // Owner us, full access for us and SYSTEM, like memport's own pipes, so that its client accepts us.
    snprintf(sddl, sizeof sddl, "O:%sD:P(A;;GA;;;%s)(A;;GA;;;SY)", sid, sid);
  } else {
    // Owned by someone else; Everyone may use it (a squatter that wants to be found).
    snprintf(sddl, sizeof sddl, "O:%sD:P(A;;GA;;;WD)", owner);
  }
  PSECURITY_DESCRIPTOR sd = NULL;
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(sddl, SDDL_REVISION_1, &sd, NULL)) {
    die("ConvertStringSecurityDescriptorToSecurityDescriptor(%s): %lu", sddl, GetLastError());
  }
  SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
  HANDLE pipe = CreateNamedPipeA(address, PIPE_ACCESS_DUPLEX | (overlapped ? FILE_FLAG_OVERLAPPED : 0),
                                 PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT, PIPE_UNLIMITED_INSTANCES,
                                 65536, 65536, 0, &sa);
  const DWORD err = GetLastError();
  LocalFree(sd);
  if (pipe == INVALID_HANDLE_VALUE) {
    say("CANNOT create the pipe owned by %s (error %lu)", owner, err);
    exit(3);
  }
  return pipe;
}

static void listen_and_accept(const char* address) {
  g_pipe = create_pipe(address, "me", 0);
  say("LISTENING");
  if (!ConnectNamedPipe(g_pipe, NULL) && GetLastError() != ERROR_PIPE_CONNECTED) die("ConnectNamedPipe: %lu", GetLastError());
  ULONG pid = 0;
  if (!GetNamedPipeClientProcessId(g_pipe, &pid)) die("GetNamedPipeClientProcessId: %lu", GetLastError());
  g_peer_pid = pid;
  open_peer_process();
  say("ACCEPTED %lu", (unsigned long)pid);
}

// See the Linux listen_hand_off: here the holder gets the pipe instance.
static void listen_hand_off(const char* address) {
  g_pipe = create_pipe(address, "me", 0);
  spawn_pipe_holder("hold-listening-pipe");
  say("LISTENING");
  wait_for_stdin_eof();
}

static int send_raw(const void* bytes, size_t n) {
  DWORD written = 0;
  if (!WriteFile(g_pipe, bytes, (DWORD)n, &written, NULL)) {
    say("SEND FAILED %lu", GetLastError());
    return -1;
  }
  return 0;
}

static long receive_raw(int timeout_ms) {
  const ULONGLONG deadline = GetTickCount64() + (ULONGLONG)timeout_ms;
  for (;;) {
    DWORD available = 0;
    if (!PeekNamedPipe(g_pipe, NULL, 0, NULL, &available, NULL)) return RX_EOF;
    if (available > 0) {
      DWORD got = 0;
      if (!ReadFile(g_pipe, g_rx, sizeof g_rx, &got, NULL)) return RX_EOF;
      return (long)got;
    }
    if (GetTickCount64() >= deadline) return RX_TIMEOUT;
    Sleep(2);
  }
}

static Region* section_region(DWORD protect, uint64_t size, HANDLE file, uint8_t fill) {
  Region* region = (Region*)calloc(1, sizeof *region);
  region->size = size;
  region->section = CreateFileMappingA(file, NULL, protect, (DWORD)(size >> 32), (DWORD)size, NULL);
  if (region->section == NULL) die("CreateFileMapping(protect 0x%lx): %lu", protect, GetLastError());
  if (fill != 0 && file == INVALID_HANDLE_VALUE && (protect & SEC_RESERVE) == 0) {
    uint8_t* view = (uint8_t*)MapViewOfFile(region->section, FILE_MAP_WRITE, 0, 0, (SIZE_T)size);
    if (view == NULL) die("MapViewOfFile: %lu", GetLastError());
    memset(view, fill, (size_t)size);
    UnmapViewOfFile(view);
  }
  return region;
}

static Region* make_region(uint64_t size, uint8_t fill) {
  return section_region(PAGE_READWRITE | SEC_COMMIT, size, INVALID_HANDLE_VALUE, fill);
}

// Puts `handle` into the peer's table; returns the value there.
static uint32_t push(HANDLE handle, DWORD access, BOOL inheritable) {
  HANDLE remote = NULL;
  if (!DuplicateHandle(GetCurrentProcess(), handle, g_peer_process, &remote, access, inheritable,
                       access == 0 ? DUPLICATE_SAME_ACCESS : 0)) {
    die("DuplicateHandle into the peer: %lu", GetLastError());
  }
  return (uint32_t)(uintptr_t)remote;
}

static uint32_t push_held(HANDLE handle, DWORD access) {
  const uint32_t value = push(handle, access, FALSE);
  if (g_held_count < 256) {
    g_held_source[g_held_count] = handle;
    g_held[g_held_count++] = value;
  }
  return value;
}

#define RO_ACCESS (FILE_MAP_READ | SECTION_QUERY)
#define RW_ACCESS (FILE_MAP_READ | FILE_MAP_WRITE | SECTION_QUERY)

static uint32_t g_shared[MAX_REGIONS];
static int g_shared_count = 0;

static HANDLE g_shared_source[MAX_REGIONS];

static uint32_t share_region(Region* region, int read_only) {
  const uint32_t value = push(region->section, read_only ? RO_ACCESS : RW_ACCESS, FALSE);
  if (g_shared_count < MAX_REGIONS) {
    g_shared_source[g_shared_count] = region->section;
    g_shared[g_shared_count++] = value;
  }
  return value;
}

static int same_object(HANDLE a, HANDLE b);

static void report_planted(void) {
  int still = 0;
  for (int i = 0; i < g_shared_count; ++i) {
    HANDLE copy = NULL;
    if (DuplicateHandle(g_peer_process, (HANDLE)(uintptr_t)g_shared[i], GetCurrentProcess(), &copy, 0, FALSE,
                        DUPLICATE_SAME_ACCESS)) {
      if (same_object(copy, g_shared_source[i])) ++still;
      CloseHandle(copy);
    }
  }
  say("PLANTED %d of %d", still, g_shared_count);
}

static void hold_shared(void) {
  for (int i = 0; i < g_shared_count && g_held_count < 256; ++i) {
    g_held_source[g_held_count] = g_shared_source[i];
    g_held[g_held_count++] = g_shared[i];
  }
  g_shared_count = 0;
}

static void take_received_region(const uint8_t* frame, int index) {
  const uint8_t* d = frame + HEADER + DESCRIPTOR * index;
  const uint64_t size = get_u64(d);
  const uint32_t flags = get_u32(d + 8);
  HANDLE section = (HANDLE)(intptr_t)(int32_t)get_u32(d + 12);
  const uint8_t* view = (const uint8_t*)MapViewOfFile(section, FILE_MAP_READ, 0, 0, (SIZE_T)size);
  if (view == NULL) {
    say("REGION %d unmappable %lu", index, GetLastError());
  } else {
    say("REGION %d size %llu %s first %u", index, (unsigned long long)size, (flags & READ_ONLY) ? "ro" : "rw", view[0]);
    UnmapViewOfFile(view);
  }
  CloseHandle(section);
}

static void drop_received_handles(void) {}

// DUPLICATE_CLOSE_SOURCE from the peer's table. Windows accepts a NULL target
// for this; Wine 8 does not, so the copy comes here and is closed.
static int revoke(uint32_t value) {
  HANDLE copy = NULL;
  if (!DuplicateHandle(g_peer_process, (HANDLE)(uintptr_t)value, GetCurrentProcess(), &copy, 0, FALSE,
                       DUPLICATE_CLOSE_SOURCE | DUPLICATE_SAME_ACCESS)) {
    return 0;
  }
  CloseHandle(copy);
  return 1;
}


static void hold_then_revoke(void) {
  if (g_held_count == 0) return;
  say("HOLDING %d", g_held_count);
  wait_for_stdin_eof();
  // Still there, and still the very objects we planted?
  int kept = 0;
  for (int i = 0; i < g_held_count; ++i) {
    HANDLE copy = NULL;
    if (DuplicateHandle(g_peer_process, (HANDLE)(uintptr_t)g_held[i], GetCurrentProcess(), &copy, 0, FALSE,
                        DUPLICATE_SAME_ACCESS)) {
      kept += same_object(copy, g_held_source[i]);
      CloseHandle(copy);
    }
  }
  say("KEPT %d of %d", kept, g_held_count);
  int revoked = 0;
  for (int i = 0; i < g_held_count; ++i) revoked += revoke(g_held[i]);
  say("REVOKED %d of %d", revoked, g_held_count);
  g_held_count = 0;
}

// --- Looking at handle tables (ours or the receiver's).

typedef LONG(NTAPI* NtQueryObjectFn)(HANDLE, int, PVOID, ULONG, PULONG);
typedef LONG(NTAPI* NtQuerySectionFn)(HANDLE, int, PVOID, SIZE_T, PSIZE_T);
typedef struct {
  USHORT Length;
  USHORT MaximumLength;
  PWSTR Buffer;
} CountedString;
typedef struct {
  ULONG Attributes;
  ACCESS_MASK GrantedAccess;
  ULONG HandleCount;
  ULONG PointerCount;
  ULONG Reserved[10];
} BasicObjectInfo;
typedef struct {
  PVOID BaseAddress;
  ULONG AllocationAttributes;
  LARGE_INTEGER MaximumSize;
} SectionBasicInfo;

static NtQueryObjectFn nt_query_object(void) {
  static NtQueryObjectFn fn = NULL;
  if (fn == NULL) fn = (NtQueryObjectFn)(void*)GetProcAddress(GetModuleHandleA("ntdll.dll"), "NtQueryObject");
  return fn;
}

// NtQueryObject for a class that answers with one counted string (the type
// name, the object name) into `out` as UTF-8, keeping only what follows the
// last backslash when `last_component`. The status, negative on failure.
static LONG query_string(HANDLE handle, ULONG info_class, int last_component, char* out, size_t cap) {
  out[0] = '\0';
  union {
    ULONGLONG align;
    unsigned char bytes[2048];
  } buffer;
  ULONG returned = 0;
  if (nt_query_object() == NULL) return -1;
  const LONG status = nt_query_object()(handle, info_class, buffer.bytes, sizeof buffer.bytes, &returned);
  if (status < 0) return status;
  const CountedString* string = (const CountedString*)buffer.bytes;
  if (string->Buffer == NULL || string->Length == 0) return status;
  const wchar_t* text = string->Buffer;
  int length = string->Length / 2;
  for (int i = length - 1; last_component && i >= 0; --i) {
    if (text[i] == L'\\') {
      text += i + 1;
      length -= i + 1;
      break;
    }
  }
  const int n = WideCharToMultiByte(CP_UTF8, 0, text, length, out, (int)cap - 1, NULL, NULL);
  out[n > 0 ? n : 0] = '\0';
  return status;
}

// The object type of one of our own handles ("Section", "File", ...), or "?<status>" if it is not open.
static void type_of(HANDLE handle, char* out, size_t cap) {
  const LONG status = query_string(handle, 2 /*ObjectTypeInformation*/, 0, out, cap);
  if (status < 0) snprintf(out, cap, "?%lx", (unsigned long)status);
}

// The object's name, if it has one ("" for the unnamed sections memport makes):
// only the last path component, "\Sessions\1\BaseNamedObjects\x" -> "x".
static void name_of(HANDLE handle, char* out, size_t cap) {
  query_string(handle, 1 /*ObjectNameInformation*/, 1, out, cap);
}

static uint64_t section_size(HANDLE section) {
  static NtQuerySectionFn fn = NULL;
  if (fn == NULL) fn = (NtQuerySectionFn)(void*)GetProcAddress(GetModuleHandleA("ntdll.dll"), "NtQuerySection");
  SectionBasicInfo info;
  memset(&info, 0, sizeof info);
  SIZE_T returned = 0;
  if (fn == NULL || fn(section, 0 /*SectionBasicInformation*/, &info, sizeof info, &returned) < 0) return 0;
  return (uint64_t)info.MaximumSize.QuadPart;
}

static HANDLE self_process(void) {
  static HANDLE self = NULL;
  if (self == NULL) self = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, GetCurrentProcessId());
  return self;
}

// Whether two handles name the same kernel object (CompareObjectHandles, Windows 10+).
static int same_object(HANDLE a, HANDLE b) {
  typedef BOOL(WINAPI * CompareFn)(HANDLE, HANDLE);
  static CompareFn compare = NULL;
  if (compare == NULL) compare = (CompareFn)(void*)GetProcAddress(GetModuleHandleA("kernelbase.dll"), "CompareObjectHandles");
  if (compare != NULL) return compare(a, b) != FALSE;
  return GetProcessId(a) != 0 && GetProcessId(a) == GetProcessId(b);
}

// What value `value` names in the receiver right now, as a short label:
// "-" (not open), "own-pipe"/"own-process" (this connection's pipe end, or
// the receiver's handle to us), "good-pipe" (the connection of `good_pid`),
// otherwise the type name, with "+w" for a section that maps for write.
typedef struct {
  char label[200];
  int open;
  int writable_section;
} RemoteHandle;

static RemoteHandle look_at(uint32_t value, DWORD good_pid) {
  RemoteHandle out;
  memset(&out, 0, sizeof out);
  strcpy(out.label, "-");
  HANDLE copy = NULL;
  if (!DuplicateHandle(g_peer_process, (HANDLE)(intptr_t)(int32_t)value, GetCurrentProcess(), &copy, 0, FALSE,
                       DUPLICATE_SAME_ACCESS)) {
    return out;
  }
  out.open = 1;
  char type[64];
  type_of(copy, type, sizeof type);
  snprintf(out.label, sizeof out.label, "%s", type[0] ? type : "?");
  if (!strcmp(type, "File") && GetFileType(copy) == FILE_TYPE_PIPE) {
    ULONG client = 0;
    if (GetNamedPipeClientProcessId(copy, &client)) {
      if (client == GetCurrentProcessId()) strcpy(out.label, "own-pipe");
      else if (good_pid != 0 && client == good_pid) strcpy(out.label, "good-pipe");
      else snprintf(out.label, sizeof out.label, "pipe(client %lu)", (unsigned long)client);
    } else {
      strcpy(out.label, "pipe");
    }
  } else if (!strcmp(type, "Process")) {
    // The receiver's handles to this process (memport opens the client with
    // PROCESS_DUP_HANDLE only, so GetProcessId cannot tell: compare objects).
    if (same_object(copy, self_process())) strcpy(out.label, "own-process");
  } else if (!strcmp(type, "Section")) {
    BasicObjectInfo basic;
    ULONG returned = 0;
    out.writable_section = nt_query_object()(copy, 0 /*ObjectBasicInformation*/, &basic, sizeof basic, &returned) >= 0 &&
                           (basic.GrantedAccess & SECTION_MAP_WRITE) != 0;
    char name[256];
    name_of(copy, name, sizeof name);
    snprintf(out.label, sizeof out.label, "Section%s(%llu%s%s)", out.writable_section ? "+w" : "",
             (unsigned long long)section_size(copy), name[0] ? "," : "", name);
  } else if (type[0] == '?' || type[0] == '\0') {
    snprintf(out.label, sizeof out.label, "unknown-type");
  }
  CloseHandle(copy);
  return out;
}

// One connection per value: a MESSAGE whose one descriptor names `value`,
// declared in the mode a section there would pass with (the attacker's best
// shot) and with size 1. Reports "V <value> <what it named> <outcome>
// <after>" where outcome is DROPPED (refused), ADOPTED (memport took it) or
// TIMEOUT, and after is "kept" or "CLOSED" (the value named something before
// and no longer does, or something else, and it was not this connection's own).
// The value in the receiver's table that `look_at` labels `symbol`, or 0.
static uint32_t find_in_peer(const char* symbol, DWORD good_pid) {
  for (uint32_t v = 4; v < 0x10000; v += 4) {
    if (!strcmp(look_at(v, good_pid).label, symbol)) return v;
  }
  return 0;
}

// `symbol` (optional): "own-pipe", "own-process" or "good-pipe", found in the
// receiver's table once connected and used as the value.
// Extra descriptor flags for attack_value ("sweep-named": NAMED).
static uint32_t g_value_flags = 0;

static int kind_churns_on_its_own(const char* label) {
  static const char* const kinds[] = {"unknown-type", "Event", "Semaphore", "Mutant", "Timer", "KeyedEvent", NULL};
  for (const char* const* k = kinds; *k != NULL; ++k) {
    if (!strcmp(label, *k)) return 1;
  }
  return 0;
}

static int attack_value(const char* address, uint32_t value, const char* symbol, DWORD good_pid, int* adopted,
                        int* closed) {
  connect_to(address);
  expect_welcome();
  if (symbol != NULL) {
    value = find_in_peer(symbol, good_pid);
    if (value == 0) {
      say("V ? %s NOTFOUND", symbol);
      CloseHandle(g_pipe);
      CloseHandle(g_peer_process);
      g_peer_process = NULL;
      return 0;
    }
  }
  const RemoteHandle before = look_at(value, good_pid);
  Buf b = header(MESSAGE, 1, 1, 0);
  descriptor(&b, 1, (before.writable_section ? 0 : READ_ONLY) | g_value_flags, value);
  const int sent = send_raw(b.bytes, b.length) == 0;
  free(b.bytes);
  const char* outcome = "TIMEOUT";
  for (;;) {
    long n = receive_raw(15000);
    if (n == RX_EOF) {
      if (strcmp(outcome, "ADOPTED") != 0) outcome = "DROPPED";
      break;
    }
    if (n == RX_TIMEOUT) break;
    if (n >= HEADER && frame_type() == ACK && strcmp(outcome, "ADOPTED") != 0) {
      outcome = "ADOPTED";
      ++*adopted;
    }
  }
  CloseHandle(g_pipe);
  const RemoteHandle after = look_at(value, good_pid);
  const int own = !strcmp(before.label, "own-pipe") || !strcmp(before.label, "own-process");
  const int changed = before.open && !own && (!after.open || strcmp(before.label, after.label) != 0);
  // Some kinds come and go in the receiver on their own while the sweep runs:
  // objects whose type Wine does not name (its internals), and the
  // synchronisation objects Node, libuv and Wine create and close for their
  // own work (a CI run saw an Event of theirs vanish mid-sweep). A change to
  // one of those is printed as "gone", not counted: memport closes no value
  // of those kinds that it is handed, which the FOREIGN cases check
  // deterministically (an Event, Mutex, Semaphore... planted and named), and
  // the census covers leaks. Every kind memport itself closes (Section,
  // File/pipe, Process, Thread) still counts as CLOSED.
  const int churns = kind_churns_on_its_own(before.label);
  if (changed && !churns) ++*closed;
  say("V 0x%lx %s %s %s%s", (unsigned long)value, before.label, sent ? outcome : "UNSENT",
      !changed ? "kept" : churns ? "gone " : "CLOSED ", changed ? after.label : "");
  CloseHandle(g_peer_process);
  g_peer_process = NULL;
  return strcmp(outcome, "DROPPED") == 0;
}

// Named handles of the receiver first (`symbols`, may be NULL-terminated
// list or NULL), then every value in `values`.
static void attack_values(const char* address, const char* const* symbols, uint32_t* values, int count, DWORD good_pid) {
  int dropped = 0, adopted = 0, closed = 0, total = 0;
  for (; symbols != NULL && *symbols != NULL; ++symbols, ++total) {
    dropped += attack_value(address, 0, *symbols, good_pid, &adopted, &closed);
  }
  for (int i = 0; i < count; ++i, ++total) dropped += attack_value(address, values[i], NULL, good_pid, &adopted, &closed);
  say("VALUES %d dropped %d adopted %d closed %d", total, dropped, adopted, closed);
}

// Handles of every kind but Section, put into the receiver and named as a region.
static HANDLE foreign_handle(const char* kind) {
  if (!strcmp(kind, "event")) return CreateEventA(NULL, TRUE, FALSE, NULL);
  if (!strcmp(kind, "mutex")) return CreateMutexA(NULL, FALSE, NULL);
  if (!strcmp(kind, "semaphore")) return CreateSemaphoreA(NULL, 1, 1, NULL);
  if (!strcmp(kind, "process")) return OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, GetCurrentProcessId());
  if (!strcmp(kind, "thread")) return OpenThread(THREAD_QUERY_LIMITED_INFORMATION, FALSE, GetCurrentThreadId());
  if (!strcmp(kind, "pipe")) return g_pipe;
  if (!strcmp(kind, "file")) {
    char dir[MAX_PATH], path[MAX_PATH];
    GetTempPathA(sizeof dir, dir);
    GetTempFileNameA(dir, "evl", 0, path);
    return CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
                       FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE, NULL);
  }
  die("unknown handle kind %s", kind);
  return NULL;
}

// A temporary file of `size` bytes, for file-backed sections.
static HANDLE temp_file(uint64_t size) {
  HANDLE file = foreign_handle("file");
  if (file == INVALID_HANDLE_VALUE) die("temp file: %lu", GetLastError());
  uint8_t block[4096];
  memset(block, 0x44, sizeof block);
  for (uint64_t done = 0; done < size; done += sizeof block) {
    DWORD written = 0;
    WriteFile(file, block, sizeof block, &written, NULL);
  }
  return file;
}

// A section that is not what a memport region is, named in a MESSAGE.
static void wrong_section(const char* kind) {
  uint64_t declared = 4096;
  int declared_ro = 0;
  uint32_t value = 0;
  if (!strcmp(kind, "small")) {
    Region* r = make_region(4096, 1);
    declared = 8192;
    value = push_held(r->section, RW_ACCESS);
  } else if (!strcmp(kind, "reserve")) {
    Region* r = section_region(PAGE_READWRITE | SEC_RESERVE, 65536, INVALID_HANDLE_VALUE, 0);
    value = push_held(r->section, RW_ACCESS);
  } else if (!strcmp(kind, "file")) {
    Region* r = section_region(PAGE_READONLY, 0, temp_file(8192), 0);
    declared_ro = 1;
    value = push_held(r->section, RO_ACCESS);
  } else if (!strcmp(kind, "image")) {
    char exe[MAX_PATH];
    GetModuleFileNameA(NULL, exe, sizeof exe);
    HANDLE file = CreateFileA(exe, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    Region* r = section_region(PAGE_READONLY | SEC_IMAGE, 0, file, 0);
    declared_ro = 1;
    value = push_held(r->section, RO_ACCESS);
  } else if (!strcmp(kind, "rw-as-ro")) {
    Region* r = make_region(4096, 1);
    declared_ro = 1;
    value = push_held(r->section, RW_ACCESS);
  } else if (!strcmp(kind, "ro-as-rw")) {
    Region* r = make_region(4096, 1);
    value = push_held(r->section, RO_ACCESS);
  } else if (!strcmp(kind, "named")) {  // right in every way but one: it has a name
    char name[64];
    snprintf(name, sizeof name, "memport-adversarial-%lu", (unsigned long)GetCurrentProcessId());
    HANDLE section = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE | SEC_COMMIT, 0, 4096, name);
    if (section == NULL) die("CreateFileMapping(%s): %lu", name, GetLastError());
    value = push_held(section, RW_ACCESS);
  } else {
    die("unknown section kind %s", kind);
  }
  Buf b = header(MESSAGE, 1, 1, 0);
  descriptor(&b, declared, declared_ro ? READ_ONLY : 0, value);
  attack_and_drain(b);
}

// Lists the handles of process `pid` ("H <value> <type> <detail>"), leaving
// out the ones that name this process or its pipes (a census taken by a child
// must not count the child). Under Wine, where GetProcessHandleCount says 0,
// this is how the test tells which objects a drift in its slot probe is made of.
static void handle_table(DWORD pid) {
  g_peer_process = OpenProcess(PROCESS_DUP_HANDLE, FALSE, pid);
  if (g_peer_process == NULL) die("OpenProcess(%lu): %lu", (unsigned long)pid, GetLastError());
  for (uint32_t v = 4; v < 0x10000; v += 4) {
    HANDLE copy = NULL;
    if (!DuplicateHandle(g_peer_process, (HANDLE)(uintptr_t)v, GetCurrentProcess(), &copy, 0, FALSE,
                         DUPLICATE_SAME_ACCESS)) {
      continue;
    }
    char type[64];
    char detail[160] = "";
    type_of(copy, type, sizeof type);
    ULONG client = 0;
    if (!strcmp(type, "File") && GetFileType(copy) == FILE_TYPE_PIPE && GetNamedPipeClientProcessId(copy, &client)) {
      if (client == GetCurrentProcessId()) type[0] = '\0';
      // The pipe's name tells memport's pipes (memport-<sid>-<channel>) from
      // libuv's child stdio pipes (uv\<address>-<pid>).
      char pipe_name[128] = "";
      query_string(copy, 1 /*ObjectNameInformation*/, 0, pipe_name, sizeof pipe_name);
      const char* prefix = "\\Device\\NamedPipe\\";
      const char* shown = strncmp(pipe_name, prefix, strlen(prefix)) == 0 ? pipe_name + strlen(prefix) : pipe_name;
      snprintf(detail, sizeof detail, "pipe-client=%lu,%s", (unsigned long)client, shown[0] ? shown : "unnamed");
    } else if (!strcmp(type, "Process") && same_object(copy, self_process())) {
      type[0] = '\0';
    }
    if (type[0] != '\0') say("H 0x%lx %s %s", (unsigned long)v, type, detail);
    CloseHandle(copy);
  }
  say("TABLE done");
}

// Counts the Section handles this process holds (a child spawned by the
// receiver runs this: it must hold none of the receiver's regions). Prints
// "SECTION <value> <size>" for each, then "SECTIONS <n>".
static void scan_handles(void) {
  int count = 0;
  for (uintptr_t v = 4; v < 0x10000; v += 4) {
    HANDLE h = (HANDLE)v;
    DWORD flags = 0;
    if (!GetHandleInformation(h, &flags)) continue;
    char type[64];
    type_of(h, type, sizeof type);
    if (strcmp(type, "Section") != 0) continue;
    say("SECTION 0x%lx %llu", (unsigned long)v, (unsigned long long)section_size(h));
    ++count;
  }
  say("SECTIONS %d", count);
}

// The control for scan_handles: an inheritable section of `size` bytes here,
// and a child started with bInheritHandles=TRUE (as libuv starts every child)
// that scans; its lines are relayed as "CHILD ...".
static void scan_control(uint64_t size) {
  SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
  HANDLE section = CreateFileMappingA(INVALID_HANDLE_VALUE, &inherit, PAGE_READWRITE, 0, (DWORD)size, NULL);
  if (section == NULL) die("CreateFileMapping: %lu", GetLastError());
  HANDLE read_end = NULL, write_end = NULL;
  if (!CreatePipe(&read_end, &write_end, &inherit, 0)) die("CreatePipe: %lu", GetLastError());
  SetHandleInformation(read_end, HANDLE_FLAG_INHERIT, 0);
  HANDLE child = start_self("scan-handles -", write_end, GetStdHandle(STD_INPUT_HANDLE));
  CloseHandle(write_end);
  char text[65536];
  DWORD total = 0, got = 0;
  while (total < sizeof text - 1 && ReadFile(read_end, text + total, (DWORD)(sizeof text - 1 - total), &got, NULL) && got) {
    total += got;
  }
  text[total] = '\0';
  WaitForSingleObject(child, 10000);
  CloseHandle(child);
  for (char* line = strtok(text, "\r\n"); line != NULL; line = strtok(NULL, "\r\n")) say("CHILD %s", line);
  CloseHandle(section);
}

// A pipe at `address` owned by `owner` ("me", or a SID such as "SY"),
// listening while stdin is open (or `ms` milliseconds). Reports how many
// clients connected and how many bytes they sent.
static void squat(const char* address, const char* owner, int ms) {
  HANDLE pipe = create_pipe(address, owner, /*overlapped=*/1);
  OVERLAPPED overlapped;
  memset(&overlapped, 0, sizeof overlapped);
  overlapped.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
  int connections = 0;
  unsigned long bytes = 0;
  // Waiting before saying so, and a client that came and went before the
  // wait began (ERROR_NO_DATA) counts too: under load the client can be
  // faster than this process.
  BOOL done = ConnectNamedPipe(pipe, &overlapped);
  DWORD err = done ? ERROR_PIPE_CONNECTED : GetLastError();
  say("LISTENING");
  if (err == ERROR_NO_DATA) err = ERROR_PIPE_CONNECTED;
  if (err == ERROR_IO_PENDING) {
    err = WaitForSingleObject(overlapped.hEvent, (DWORD)ms) == WAIT_OBJECT_0 ? ERROR_PIPE_CONNECTED : ERROR_TIMEOUT;
  }
  if (err == ERROR_PIPE_CONNECTED) {
    ++connections;
    // Whatever the client says before it hangs up (it should say nothing).
    for (int i = 0; i < 200; ++i) {
      DWORD available = 0;
      if (!PeekNamedPipe(pipe, NULL, 0, NULL, &available, NULL)) break;
      if (available) {
        DWORD got = 0;
        OVERLAPPED read;
        memset(&read, 0, sizeof read);
        read.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
        if (ReadFile(pipe, g_rx, sizeof g_rx, NULL, &read) || GetLastError() == ERROR_IO_PENDING ||
            GetLastError() == ERROR_MORE_DATA) {
          GetOverlappedResult(pipe, &read, &got, TRUE);
        }
        bytes += got;
        CloseHandle(read.hEvent);
      }
      Sleep(10);
    }
  }
  say("CONNECTIONS %d BYTES %lu", connections, bytes);
  wait_for_stdin_eof();
  CloseHandle(pipe);
}

// Sections received with and without the inherit flag, for the child-scan test.
static void inheritable_sections(uint64_t plain_size, uint64_t inheritable_size) {
  Region* plain = make_region(plain_size, 0x21);
  Region* inheritable = make_region(inheritable_size, 0x22);
  Buf b = header(MESSAGE, 2, 1, 0);
  descriptor(&b, plain_size, 0, share_region(plain, 0));
  descriptor(&b, inheritable_size, 0, push(inheritable->section, RW_ACCESS, /*inheritable=*/TRUE));
  send_or_report(&b);
  free(b.bytes);
  drain(20000, 0);
}

// A listener that gets one ACK out of the client (so that it has read from
// the pipe, which impersonation requires), then tries to act as the client.
// memport's client opens with SECURITY_IDENTIFICATION: the best a squatting
// server may get is a token it can look at, never one it can use.
static void listen_impersonate(const char* address) {
  listen_and_accept(address);
  Buf welcome = header(WELCOME, 0, 0, 0);
  send_or_report(&welcome);
  Buf hello = text_frame(MESSAGE, 1, "\"who are you?\"");
  send_or_report(&hello);
  long n = receive_raw(20000);
  if (n >= HEADER) report_frame(n, 0);
  if (!ImpersonateNamedPipeClient(g_pipe)) {
    say("IMPERSONATION refused %lu", GetLastError());
  } else {
    HANDLE token = NULL;
    SECURITY_IMPERSONATION_LEVEL level = SecurityDelegation;
    DWORD size = 0;
    if (OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &token) &&
        GetTokenInformation(token, TokenImpersonationLevel, &level, sizeof level, &size)) {
      say("IMPERSONATION level %d", (int)level);  // 0 anonymous, 1 identification, 2 impersonation, 3 delegation
    } else {
      say("IMPERSONATION token unavailable %lu", GetLastError());
    }
    if (token != NULL) CloseHandle(token);
    RevertToSelf();
  }
  drain(20000, 0);
}

static uint32_t parse_u32(const char* text) { return (uint32_t)strtoull(text, NULL, 0); }

static int platform_scenario(const char* name, const char* address, int argc, char** argv) {
  if (!strcmp(name, "scan-handles")) {
    scan_handles();
  } else if (!strcmp(name, "handle-table")) {
    handle_table((DWORD)arg_u64(argc, argv, 0, 0));
  } else if (!strcmp(name, "listen-impersonate")) {
    listen_impersonate(address);
  } else if (!strcmp(name, "scan-control")) {
    scan_control(arg_u64(argc, argv, 0, 0x13000));
  } else if (!strcmp(name, "squat")) {
    squat(address, argc > 0 ? argv[0] : "SY", (int)arg_u64(argc, argv, 1, 5000));
  } else if (!strcmp(name, "named-value")) {
    // named-value <value> <size>: one region flagged named whose handle field
    // is a value already in the receiver's table (the F2 hole: a receiver
    // cannot tell it from one we pushed). Then waits for stdin to close.
    connect_to(address);
    expect_welcome();
    Buf b = header(MESSAGE, 1, 1, 0);
    descriptor(&b, arg_u64(argc, argv, 1, 4096), NAMED, parse_u32(argc > 0 ? argv[0] : "0"));
    send_or_report(&b);
    free(b.bytes);
    const long n = receive_raw(20000);
    if (n >= HEADER) report_frame(n, 0);
    wait_for_stdin_eof();
  } else if (!strcmp(name, "named-receiver")) {
    // named-receiver <ack|nack|hangup>: takes one MESSAGE from the listener,
    // maps each region by the value memport pushed (never closing it: a
    // memport receiver keeps a duplicate instead), answers ACK or NACK (or,
    // for hangup, closes its end of the pipe without answering), then says
    // whether each pushed value was closed by the sender ("PUSHED <v> CLOSED|OPEN").
    connect_to(address);
    expect_welcome();
    const int nack = argc > 0 && !strcmp(argv[0], "nack");
    const int hangup = argc > 0 && !strcmp(argv[0], "hangup");
    const long n = receive_raw(20000);
    if (n < HEADER || frame_type() != MESSAGE) die("no MESSAGE (%ld)", n);
    const uint32_t seq = frame_seq();
    const int count = frame_regions();
    uint32_t pushed[MAX_REGIONS];
    for (int i = 0; i < count && i < MAX_REGIONS; ++i) {
      const uint8_t* d = g_rx + HEADER + DESCRIPTOR * i;
      const uint32_t flags = get_u32(d + 8);
      pushed[i] = get_u32(d + 12);
      const uint8_t* view = (const uint8_t*)MapViewOfFile((HANDLE)(uintptr_t)pushed[i], FILE_MAP_READ, 0, 0, 0);
      say("NAMED-REGION %d flags %u first %d", i, flags, view == NULL ? -1 : view[0]);
      if (view != NULL) UnmapViewOfFile(view);
    }
    if (hangup) {
      CloseHandle(g_pipe);
      g_pipe = INVALID_HANDLE_VALUE;
      say("HUNG UP");
    } else {
      Buf b = nack ? text_frame(NACK, seq, "{\"code\":\"UNSUPPORTED\",\"message\":\"evil says no\"}")
                   : header(ACK, 0, seq, 0);
      send_or_report(&b);
      free(b.bytes);
    }
    for (int i = 0; i < count && i < MAX_REGIONS; ++i) {
      DWORD info = 0;
      int open = 1;
      // The sender closes it when it reads our answer: wait for that (bounded).
      for (int tries = 0; tries < 200 && (open = GetHandleInformation((HANDLE)(uintptr_t)pushed[i], &info)); ++tries) {
        sleep_ms(50);
      }
      say("PUSHED 0x%x %s", pushed[i], open ? "OPEN" : "CLOSED");
    }
    if (!hangup) drain(5000, 0);
  } else if (!strcmp(name, "values")) {
    // values <v,v,...> [good-pid]
    uint32_t values[256];
    int count = 0;
    char* list = argc > 0 ? argv[0] : (char*)"";
    for (char* v = strtok(list, ","); v != NULL && count < 256; v = strtok(NULL, ",")) values[count++] = parse_u32(v);
    attack_values(address, NULL, values, count, (DWORD)arg_u64(argc, argv, 1, 0));
  } else if (!strcmp(name, "sweep") || !strcmp(name, "sweep-named")) {
    // sweep-named: the same, every region flagged named (F2 with the opt-in).
    if (!strcmp(name, "sweep-named")) g_value_flags = NAMED;
    // sweep <from> <to> [good-pid]: this connection's own pipe, the
    // receiver's handle to us and (with good-pid) its pipe to that other peer,
    // found in its table; then every multiple of 4 in [from, to].
    static uint32_t values[65536 / 4];
    int count = 0;
    for (uint32_t v = parse_u32(argv[0]); v <= parse_u32(argv[1]) && count < (int)(sizeof values / sizeof *values); v += 4) {
      values[count++] = v;
    }
    const DWORD good_pid = (DWORD)arg_u64(argc, argv, 2, 0);
    const char* symbols[] = {"own-pipe", "own-process", good_pid != 0 ? "good-pipe" : NULL, NULL};
    attack_values(address, symbols, values, count, good_pid);
  } else if (!strcmp(name, "foreign")) {
    connect_to(address);
    expect_welcome();
    HANDLE h = foreign_handle(argc > 0 ? argv[0] : "event");
    const uint32_t value = push_held(h, 0);
    say("PUSHED 0x%lx", (unsigned long)value);
    Buf b = header(MESSAGE, 1, 1, 0);
    descriptor(&b, 4096, READ_ONLY, value);
    attack_and_drain(b);
  } else if (!strcmp(name, "foreign-notifier")) {
    // foreign-notifier <kind>: a handle of that kind pushed into the receiver
    // and declared a notifier. "event": an Event with all rights (a notifier
    // travels with SYNCHRONIZE | EVENT_MODIFY_STATE only); "section": an
    // unnamed section; the rest as for "foreign".
    connect_to(address);
    expect_welcome();
    const char* kind = argc > 0 ? argv[0] : "event";
    HANDLE h = !strcmp(kind, "section") ? make_region(4096, 1)->section : foreign_handle(kind);
    const uint32_t value = push_held(h, 0);
    say("PUSHED 0x%lx", (unsigned long)value);
    Buf b = header(MESSAGE, 1, 1, 0);
    descriptor(&b, 0, NOTIFIER, value);
    attack_and_drain(b);
  } else if (!strcmp(name, "section")) {
    connect_to(address);
    expect_welcome();
    wrong_section(argc > 0 ? argv[0] : "small");
  } else if (!strcmp(name, "section-twice")) {
    // The same good value in two descriptors: memport adopts the first, then
    // refuses the second as already owned, and releases the first.
    connect_to(address);
    expect_welcome();
    const uint32_t value = share_region(make_region(4096, 1), 0);
    Buf b = header(MESSAGE, 2, 1, 0);
    descriptor(&b, 4096, 0, value);
    descriptor(&b, 4096, 0, value);
    attack_and_drain(b);
  } else if (!strcmp(name, "section-then-bogus")) {
    connect_to(address);
    expect_welcome();
    Buf b = header(MESSAGE, 2, 1, 0);
    descriptor(&b, 4096, 0, share_region(make_region(4096, 1), 0));
    descriptor(&b, 4096, 0, 0x105);
    attack_and_drain(b);
  } else if (!strcmp(name, "hold-pipe")) {
    // hold-pipe - <value>: started by hand_off_connection().
    g_pipe = (HANDLE)(uintptr_t)arg_u64(argc, argv, 0, 0);
    hold_until_hangup();
  } else if (!strcmp(name, "hold-listening-pipe")) {
    // hold-listening-pipe - <value>: started by listen_hand_off().
    g_pipe = (HANDLE)(uintptr_t)arg_u64(argc, argv, 0, 0);
    if (!ConnectNamedPipe(g_pipe, NULL) && GetLastError() != ERROR_PIPE_CONNECTED) {
      say("HOLDER EOF");  // the client left before we could even welcome it
      return 1;
    }
    Buf welcome = header(WELCOME, 0, 0, 0);
    if (send_raw(welcome.bytes, welcome.length) == 0) say("HOLDER SENT WELCOME");
    free(welcome.bytes);
    hold_until_hangup();
  } else if (!strcmp(name, "listen-hand-off")) {
    listen_hand_off(address);
  } else if (!strcmp(name, "inheritable")) {
    connect_to(address);
    expect_welcome();
    inheritable_sections(arg_u64(argc, argv, 0, 0x11000), arg_u64(argc, argv, 1, 0x12000));
  } else {
    return 0;
  }
  return 1;
}

#else  // Linux

// --- Linux: SOCK_SEQPACKET Unix sockets; fds travel with SCM_RIGHTS.

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static int g_socket = -1;
static int g_queued[512];  // fds for the next send_raw
static int g_queued_count = 0;
static int g_received[256];  // fds that came with the last frame
static int g_received_count = 0;

struct Region {
  int fd;
  uint64_t size;
};

static void sleep_ms(int ms) {
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

static void wait_for_stdin_eof(void) {
  char buffer[256];
  while (read(0, buffer, sizeof buffer) > 0) {
  }
}

static struct sockaddr_un address_of(const char* path) {
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof a.sun_path) die("socket path too long: %s", path);
  strcpy(a.sun_path, path);
  return a;
}

static void connect_to(const char* path) {
  struct sockaddr_un a = address_of(path);
  for (int attempt = 0; attempt < 500; ++attempt) {
    g_socket = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (connect(g_socket, (struct sockaddr*)&a, sizeof a) == 0) return;
    const int err = errno;
    close(g_socket);
    if (err != ENOENT && err != ECONNREFUSED && err != EAGAIN) die("connect(%s): %s", path, strerror(err));
    sleep_ms(20);
  }
  die("could not connect to %s", path);
}

static void hand_off_connection(void) {
  const pid_t holder = fork();
  if (holder < 0) die("fork: %s", strerror(errno));
  if (holder == 0) {
    close(0);  // only the process that connected waits for stdin
    hold_until_hangup();
    _exit(0);
  }
}

// Binds a SEQPACKET socket at `path` (replacing a stale file); the caller listens.
static int bind_at(const char* path) {
  struct sockaddr_un a = address_of(path);
  // The private directory, as memport would create it, if nobody has yet.
  char dir[sizeof a.sun_path];
  snprintf(dir, sizeof dir, "%s", path);
  char* slash = strrchr(dir, '/');
  if (slash != NULL && slash != dir) {
    *slash = '\0';
    mkdir(dir, 0700);
  }
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  unlink(path);
  if (bind(s, (struct sockaddr*)&a, sizeof a) != 0) die("bind(%s): %s", path, strerror(errno));
  return s;
}

static char g_listen_path[200];

static void remove_listen_path(void) {
  if (g_listen_path[0]) unlink(g_listen_path);
}

static void listen_and_accept(const char* path) {
  int s = bind_at(path);
  snprintf(g_listen_path, sizeof g_listen_path, "%s", path);
  atexit(remove_listen_path);
  if (listen(s, 8) != 0) die("listen: %s", strerror(errno));
  say("LISTENING");
  g_socket = accept4(s, NULL, NULL, SOCK_CLOEXEC);
  if (g_socket < 0) die("accept: %s", strerror(errno));
  close(s);
  unlink(path);
  say("ACCEPTED");
}

static int send_raw(const void* bytes, size_t n) {
  struct iovec iov = {(void*)bytes, n};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  static union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(int) * 512)];
  } control;
  if (g_queued_count > 0) {
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * g_queued_count);
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * g_queued_count);
    memcpy(CMSG_DATA(c), g_queued, sizeof(int) * g_queued_count);
  }
  const int fds = g_queued_count;
  g_queued_count = 0;
  if (sendmsg(g_socket, &msg, MSG_NOSIGNAL) < 0) {
    say("SEND FAILED %s (%d fds)", strerror(errno), fds);
    return -1;
  }
  return 0;
}

static long receive_raw(int timeout_ms) {
  struct pollfd p = {g_socket, POLLIN, 0};
  const int ready = poll(&p, 1, timeout_ms);
  if (ready == 0) return RX_TIMEOUT;
  struct iovec iov = {g_rx, sizeof g_rx};
  static union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(int) * 256)];
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.bytes;
  msg.msg_controllen = sizeof control.bytes;
  const ssize_t n = recvmsg(g_socket, &msg, MSG_CMSG_CLOEXEC);
  g_received_count = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count && g_received_count < 256; ++i) {
      memcpy(&g_received[g_received_count++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
  }
  if (n <= 0 && g_received_count == 0) return RX_EOF;
  return (long)n;
}

static Region* memfd_region(const char* label, unsigned flags, uint64_t size, uint8_t fill) {
  Region* region = (Region*)calloc(1, sizeof *region);
  region->size = size;
  region->fd = memfd_create(label, flags);
  if (region->fd < 0) die("memfd_create: %s", strerror(errno));
  if (ftruncate(region->fd, (off_t)size) != 0) die("ftruncate: %s", strerror(errno));
  if (fill != 0) {
    uint8_t* p = (uint8_t*)mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, region->fd, 0);
    if (p == MAP_FAILED) die("mmap: %s", strerror(errno));
    memset(p, fill, size);
    munmap(p, size);
  }
  return region;
}

static void seal(Region* region, int seals) {
  if (fcntl(region->fd, F_ADD_SEALS, seals) != 0) die("F_ADD_SEALS: %s", strerror(errno));
}

// A second open file description of the same memfd, with another access mode.
static int reopen(int fd, int mode) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  int again = open(path, mode | O_CLOEXEC);
  if (again < 0) die("reopen %s: %s", path, strerror(errno));
  return again;
}

static Region* make_region(uint64_t size, uint8_t fill) {
  Region* region = memfd_region(g_region_label, MFD_CLOEXEC | MFD_ALLOW_SEALING, size, fill);
  seal(region, F_SEAL_SHRINK | F_SEAL_GROW);
  return region;
}

static void queue_fd(int fd) {
  if (g_queued_count >= 512) die("too many fds queued");
  g_queued[g_queued_count++] = fd;
}

static uint32_t share_region(Region* region, int read_only) {
  int fd = region->fd;
  if (read_only) {
    seal(region, F_SEAL_FUTURE_WRITE);
    fd = reopen(region->fd, O_RDONLY);
  }
  queue_fd(fd);
  return (uint32_t)(g_queued_count - 1);
}

static void take_received_region(const uint8_t* frame, int index) {
  const uint8_t* d = frame + HEADER + DESCRIPTOR * index;
  const uint64_t size = get_u64(d);
  const uint32_t flags = get_u32(d + 8);
  const uint32_t slot = get_u32(d + 12);
  if ((int)slot >= g_received_count) {
    say("REGION %d missing fd", index);
    return;
  }
  const uint8_t* p = (const uint8_t*)mmap(NULL, size, PROT_READ, MAP_SHARED, g_received[slot], 0);
  if (p == MAP_FAILED) {
    say("REGION %d unmappable %s", index, strerror(errno));
    return;
  }
  say("REGION %d size %llu %s first %u", index, (unsigned long long)size, (flags & READ_ONLY) ? "ro" : "rw", p[0]);
  munmap((void*)p, size);
}

static void drop_received_handles(void) {
  for (int i = 0; i < g_received_count; ++i) close(g_received[i]);
  g_received_count = 0;
}

static void hold_then_revoke(void) {}
static void hold_shared(void) {}
static void report_planted(void) {}

// An fd of the given kind, declared as one region.
static int fd_of_kind(const char* kind, uint64_t size, Region** memfd) {
  *memfd = NULL;
  if (!strcmp(kind, "pipe")) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) die("pipe: %s", strerror(errno));
    return p[0];
  }
  if (!strcmp(kind, "socket")) {
    int s[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) != 0) die("socketpair: %s", strerror(errno));
    return s[0];
  }
  if (!strcmp(kind, "devzero")) return open("/dev/zero", O_RDWR | O_CLOEXEC);
  if (!strcmp(kind, "dir")) return open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (!strcmp(kind, "eventfd")) return eventfd(0, EFD_CLOEXEC);
  if (!strcmp(kind, "eventfd-semaphore")) return eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
  if (!strncmp(kind, "disk:", 5)) {
    // A regular file on a disk file system, large enough.
    int fd = open(kind + 5, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)size) != 0) die("disk file %s: %s", kind + 5, strerror(errno));
    unlink(kind + 5);
    return fd;
  }
  if (!strcmp(kind, "shm")) {
    // A regular file on tmpfs that is not a memfd (it cannot be sealed).
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/evil-peer-%d", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)size) != 0) die("%s: %s", path, strerror(errno));
    unlink(path);
    return fd;
  }
  // memfds that are not sealed as memport requires, or not in the declared mode.
  const unsigned sealing = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  if (!strcmp(kind, "memfd-unsealed")) {
    *memfd = memfd_region("evil-unsealed", sealing, size, 0x11);
    return (*memfd)->fd;
  }
  if (!strcmp(kind, "memfd-unsealable")) {
    *memfd = memfd_region("evil-unsealable", MFD_CLOEXEC, size, 0x11);
    return (*memfd)->fd;
  }
  if (!strcmp(kind, "memfd-shrink-only")) {
    *memfd = memfd_region("evil-shrink-only", sealing, size, 0x11);
    seal(*memfd, F_SEAL_SHRINK);
    return (*memfd)->fd;
  }
  if (!strcmp(kind, "memfd-small")) {
    *memfd = memfd_region("evil-small", sealing, size / 2, 0x11);
    seal(*memfd, F_SEAL_SHRINK | F_SEAL_GROW);
    return (*memfd)->fd;
  }
  if (!strcmp(kind, "memfd-writable")) {  // sealed for size, still writable
    *memfd = make_region(size, 0x11);
    return (*memfd)->fd;
  }
  if (!strcmp(kind, "memfd-write-sealed")) {  // sealed against writes, O_RDONLY
    *memfd = make_region(size, 0x11);
    seal(*memfd, F_SEAL_FUTURE_WRITE);
    return reopen((*memfd)->fd, O_RDONLY);
  }
  if (!strcmp(kind, "memfd-rdonly-fd")) {  // writable memfd, but an O_RDONLY fd
    *memfd = make_region(size, 0x11);
    return reopen((*memfd)->fd, O_RDONLY);
  }
  if (!strcmp(kind, "memfd-wronly-fd")) {  // sealed against writes, an O_WRONLY fd
    *memfd = make_region(size, 0x11);
    seal(*memfd, F_SEAL_FUTURE_WRITE);
    return reopen((*memfd)->fd, O_WRONLY);
  }
  if (!strcmp(kind, "memfd-opath")) {  // a well-sealed memfd, as an O_PATH fd
    *memfd = make_region(size, 0x11);
    return reopen((*memfd)->fd, O_PATH);
  }
  die("unknown fd kind %s", kind);
  return -1;
}

// fd <kind> [ro|rw] [size]: one region whose fd is of that kind. After the
// send, a memfd that can still be resized is truncated to 0, as an attacker
// would to make a reader that mapped it die of SIGBUS.
static void fd_attack(int argc, char** argv) {
  const char* kind = argc > 0 ? argv[0] : "pipe";
  // mode: "ro" or "rw", "+named" to flag the region as named memory;
  // "notifier" declares a notifier instead (size 0 unless given).
  const int read_only = argc > 1 && !strncmp(argv[1], "ro", 2);
  const int named = argc > 1 && strstr(argv[1], "+named") != NULL;
  const int notifier = argc > 1 && !strcmp(argv[1], "notifier");
  const uint64_t size = arg_u64(argc, argv, 2, notifier ? 0 : 4096);
  Region* memfd = NULL;
  const int fd = fd_of_kind(kind, size != 0 ? size : 4096, &memfd);
  if (fd < 0) die("could not make a %s fd: %s", kind, strerror(errno));
  queue_fd(fd);
  Buf b = header(MESSAGE, 1, 1, 0);
  descriptor(&b, size, notifier ? NOTIFIER : (read_only ? READ_ONLY : 0) | (named ? NAMED : 0), 0);
  send_or_report(&b);
  free(b.bytes);
  if (memfd != NULL && named) {
    // A named region is accepted unsealed: shrink it only once the receiver
    // has taken it (its ACK), to see what that does to a receiver holding it.
    const long n = receive_raw(15000);
    if (n >= HEADER) report_frame(n, 0);
    else if (n == RX_EOF) say("EOF");
  }
  if (memfd != NULL) {
    const int shrunk = ftruncate(memfd->fd, 0);
    say("TRUNCATE %s", shrunk == 0 ? "done" : strerror(errno));
  }
  drain(15000, 0);
}

// stream <case>: a MESSAGE handing over one stream reader, its four members
// laid out as PROTOCOL.md section 6 requires (flag bit 3), one of them not
// what it must be:
//   wake-memfd    the reader's wake-up is a memfd, not an eventfd
//   control-pipe  the control region is a pipe
//   header        every handle is right, but the data region holds no stream
static void stream_attack(int argc, char** argv) {
  const char* which = argc > 0 ? argv[0] : "header";
  Region* unused = NULL;
  const int data = fd_of_kind("memfd-write-sealed", 8192, &unused);
  const int control = fd_of_kind(strcmp(which, "control-pipe") ? "memfd-writable" : "pipe", 64, &unused);
  const int wake = strcmp(which, "wake-memfd") ? fd_of_kind("eventfd", 0, &unused) : fd_of_kind("memfd-writable", 4096, &unused);
  const int writer_wake = fd_of_kind("eventfd", 0, &unused);
  if (data < 0 || control < 0 || wake < 0 || writer_wake < 0) die("could not make the stream's fds: %s", strerror(errno));
  queue_fd(data);
  queue_fd(control);
  queue_fd(wake);
  queue_fd(writer_wake);
  Buf b = header(MESSAGE, 4, 1, 0);
  descriptor(&b, 8192, READ_ONLY | STREAM, 0);
  descriptor(&b, 64, STREAM, 1);
  descriptor(&b, 0, NOTIFIER | STREAM, 2);
  descriptor(&b, 0, NOTIFIER | STREAM, 3);
  send_or_report(&b);
  free(b.bytes);
  drain(15000, 0);
}

// fds <count> <declared> [frame]: `count` good memfds with a frame that
// declares `declared` regions (descriptor i names fd i). frame "ack" sends
// them on an ACK frame instead; "swap" swaps the first two descriptors' indices.
static void fds_attack(int argc, char** argv) {
  const int count = (int)arg_u64(argc, argv, 0, 1);
  const int declared = (int)arg_u64(argc, argv, 1, 0);
  const char* variant = argc > 2 ? argv[2] : "";
  for (int i = 0; i < count; ++i) queue_fd(make_region(4096, (uint8_t)(i + 1))->fd);
  Buf b = header(!strcmp(variant, "ack") ? ACK : MESSAGE, (uint16_t)declared, 1, 0);
  for (int i = 0; i < declared; ++i) {
    uint32_t index = (uint32_t)i;
    if (!strcmp(variant, "swap") && i < 2) index = (uint32_t)(1 - i);
    descriptor(&b, 4096, 0, index);
  }
  send_or_report(&b);
  free(b.bytes);
  drain(15000, 0);
}

// A well-sealed region sent; then the sender tries to resize it under the receiver.
static void resize_after_send(void) {
  Region* region = make_region(8192, 0x66);
  Buf b = header(MESSAGE, 1, 1, 0);
  descriptor(&b, 8192, 0, share_region(region, 0));
  send_or_report(&b);
  free(b.bytes);
  say("SHRINK %s", ftruncate(region->fd, 0) == 0 ? "done" : strerror(errno));
  say("GROW %s", ftruncate(region->fd, 1 << 20) == 0 ? "done" : strerror(errno));
  drain(20000, 0);
}

// Lists the memfds this process holds ("FD <n> <target>", then "MEMFDS <count>").
static void scan_fds(void) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == NULL) die("opendir: %s", strerror(errno));
  int count = 0;
  for (struct dirent* entry; (entry = readdir(dir)) != NULL;) {
    if (entry->d_name[0] == '.') continue;
    char path[300], target[512];
    snprintf(path, sizeof path, "/proc/self/fd/%s", entry->d_name);
    const ssize_t n = readlink(path, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (strstr(target, "memfd:") == NULL) continue;
    say("FD %s %s", entry->d_name, target);
    ++count;
  }
  closedir(dir);
  say("MEMFDS %d", count);
}

// A listener at `path` that counts who connects, and what they say, until
// stdin closes (or `ms` pass). With "foreign-uid" it listens with effective
// uid 65534 (nobody), which is what SO_PEERCRED will report to clients (needs root).
static void squat(const char* path, const char* who, int ms) {
  int s = bind_at(path);
  snprintf(g_listen_path, sizeof g_listen_path, "%s", path);
  atexit(remove_listen_path);
  const int foreign = !strcmp(who, "foreign-uid");
  if (foreign && seteuid(65534) != 0) die("seteuid(65534): %s", strerror(errno));
  if (listen(s, 8) != 0) die("listen: %s", strerror(errno));
  if (foreign && seteuid(0) != 0) die("seteuid(0): %s", strerror(errno));
  say("LISTENING");
  int connections = 0;
  unsigned long bytes = 0;
  for (;;) {
    struct pollfd p[2] = {{s, POLLIN, 0}, {0, POLLIN, 0}};
    if (poll(p, 2, ms) <= 0) break;
    // A client already queued counts even if stdin closed at the same time.
    if ((p[0].revents & POLLIN) == 0) break;  // released
    int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) continue;
    ++connections;
    g_socket = c;
    for (;;) {
      long n = receive_raw(2000);
      if (n < 0) break;
      bytes += (unsigned long)n;
      drop_received_handles();
    }
    close(c);
  }
  say("CONNECTIONS %d BYTES %lu", connections, bytes);
  wait_for_stdin_eof();
}

// Holds the flock memport's listener takes on <dir>/<name>.lock, as a live
// listener does, until stdin closes.
static void hold_lock(const char* lock_path) {
  int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) die("lock %s: %s", lock_path, strerror(errno));
  say("HOLDING");
  wait_for_stdin_eof();
}

// A listener whose process exits once stdin closes, leaving its listening
// socket to a forked holder, which welcomes one client and holds it until it
// hangs up. The kernel still names the exited process as the listener.
static void listen_hand_off(const char* path) {
  const int s = bind_at(path);
  if (listen(s, 8) != 0) die("listen: %s", strerror(errno));
  const pid_t holder = fork();
  if (holder < 0) die("fork: %s", strerror(errno));
  if (holder == 0) {
    close(0);
    g_socket = accept4(s, NULL, NULL, SOCK_CLOEXEC);
    if (g_socket < 0) die("accept: %s", strerror(errno));
    unlink(path);
    Buf welcome = header(WELCOME, 0, 0, 0);
    if (send_raw(welcome.bytes, welcome.length) == 0) say("HOLDER SENT WELCOME");
    free(welcome.bytes);
    hold_until_hangup();
    _exit(0);
  }
  close(s);
  say("LISTENING");
  wait_for_stdin_eof();
}

static int platform_scenario(const char* name, const char* address, int argc, char** argv) {
  if (!strcmp(name, "listen-hand-off")) {
    listen_hand_off(address);
  } else if (!strcmp(name, "scan-fds")) {
    scan_fds();
  } else if (!strcmp(name, "squat")) {
    squat(address, argc > 0 ? argv[0] : "me", (int)arg_u64(argc, argv, 1, 3000));
  } else if (!strcmp(name, "hold-lock")) {
    hold_lock(address);
  } else if (!strcmp(name, "fd")) {
    connect_to(address);
    expect_welcome();
    fd_attack(argc, argv);
  } else if (!strcmp(name, "fds")) {
    connect_to(address);
    expect_welcome();
    fds_attack(argc, argv);
  } else if (!strcmp(name, "stream")) {
    connect_to(address);
    expect_welcome();
    stream_attack(argc, argv);
  } else if (!strcmp(name, "resize-after-send")) {
    connect_to(address);
    expect_welcome();
    resize_after_send();
  } else {
    return 0;
  }
  return 1;
}

#endif  // the platform split

// ===========================================================================

static const char* const kFrameAttacks[] = {
    "garbage",        "short",         "header-only",    "eof-mid-frame",       "data-length-max",
    "data-length-zero-trailing",       "data-length-zero", "regions-65",        "regions-max",
    "bad-magic",      "version-2",     "version-0",      "type-0",              "type-6",
    "type-255",       "ack-unknown",   "nack-unknown",   "welcome-from-client", "reject-from-client",
    "ack-with-data",  "regions-on-ack", "bad-flags",     "region-size-zero",    "region-size-huge",
    "not-json",       "not-utf8",      "oversize",       "cap-plus-one",        "empty",
    "deep-json",
};

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: evil_peer <scenario> <address> [args...]\n");
    return 2;
  }
  const char* scenario = argv[1];
  const char* address = argv[2];
  char** rest = argv + 3;
  const int rest_count = argc - 3;

  if (platform_scenario(scenario, address, rest_count, rest)) return 0;
  if (!strncmp(scenario, "listen-", 7)) {
    evil_listener(scenario, address);
    return 0;
  }
  for (size_t i = 0; i < sizeof kFrameAttacks / sizeof *kFrameAttacks; ++i) {
    if (!strcmp(scenario, kFrameAttacks[i])) {
      connect_to(address);
      expect_welcome();
      frame_attack(scenario, rest_count, rest);
      return 0;
    }
  }
  connect_to(address);
  if (!strcmp(scenario, "connect-and-leave")) {
    say("CONNECTED");
    return 0;  // before the WELCOME could even be read
  }
  if (!strcmp(scenario, "hand-off")) {
    // Connected; another process now holds the connection too. This one
    // exits once stdin closes, while the listener may still be judging it.
    hand_off_connection();
    say("HANDED");
    wait_for_stdin_eof();
    return 0;
  }
  if (!strcmp(scenario, "pre-welcome")) {
    pre_welcome(rest_count, rest);
    return 0;
  }
  if (!strcmp(scenario, "silent-unread")) {
    // Connected, never reads the WELCOME, never says anything; until stdin closes.
    say("CONNECTED");
    wait_for_stdin_eof();
    return 0;
  }
  expect_welcome();
  if (!strcmp(scenario, "good")) {
    good(rest_count, rest);
  } else if (!strcmp(scenario, "bytewise")) {
    bytewise();
  } else if (!strcmp(scenario, "flood")) {
    flood((int)arg_u64(rest_count, rest, 0, 257));
  } else if (!strcmp(scenario, "silent")) {
    wait_for_stdin_eof();
  } else if (!strcmp(scenario, "wait")) {
    for (;;) sleep_ms(1000);  // until killed
  } else if (!strcmp(scenario, "send-then-wait")) {
    send_then(rest_count, rest, 0);
  } else if (!strcmp(scenario, "send-then-exit")) {
    send_then(rest_count, rest, 1);
  } else if (!strcmp(scenario, "take-and-wait")) {
    take_and_wait();
  } else if (!strcmp(scenario, "send-per-line")) {
    send_per_line(rest_count, rest);
  } else if (!strcmp(scenario, "unreceived")) {
    unreceived(rest_count, rest);
  } else if (!strcmp(scenario, "no-read")) {
    no_read(rest_count, rest);
  } else if (!strcmp(scenario, "take-and-answer")) {
    take_and_answer(rest_count, rest);
  } else {
    die("unknown scenario %s", scenario);
  }
  return 0;
}
