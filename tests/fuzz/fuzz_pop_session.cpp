// The stateful harness: the real POP server and Joe's real agent in the
// simulator, and a hostile peer that knows a valid secret (a compromised
// agent of the service, or a principal allowed on the patch panel) driven
// by the fuzzer's bytes: frames of every type aimed at the streams the POP
// opened, OPEN messages with any fields, credit, pings, resets, pauses in
// virtual time, and honest visitors arriving in the middle of it.
//
// What must hold for any input:
// - no assertion fires and nothing crashes (the sanitizers watch);
// - the POP only ever writes well-formed frames;
// - once the peer is gone, every visitor that was in flight ends, a new
//   visitor gets through byte for byte, and nothing is left behind but
//   Joe's tunnel (no stream, session or socket held for a finished visitor).

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "actors/agent.hpp"
#include "actors/pop_server.hpp"
#include "caf/all.hpp"
#include "net/openssl_crypto.hpp"
#include "net/wire/control.hpp"
#include "net/wire/frame.hpp"
#include "net/wire/handshake.hpp"
#include "sim/apps.hpp"
#include "sim/driver.hpp"
#include "sim/hostile_peer.hpp"
#include "sim/rig.hpp"
#include "sim/scenario.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace drtp;

namespace {

constexpr uint16_t tunnel_port = 7000;
constexpr uint16_t public_port = 8000;
constexpr uint16_t service_port = 5432;
constexpr uint8_t service_key = 0x5a;
constexpr size_t steps_max = 256;
constexpr size_t visitors_max = 8;

/// Reads the fuzzer's bytes as a script, a byte or a few at a time; past
/// the end every read is 0.
class reader {
public:
  reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint32_t u32() {
    uint32_t x = 0;
    for (int i = 0; i < 4; ++i)
      x = (x << 8) | byte();
    return x;
  }
  std::string bytes(size_t n) {
    std::string out;
    while (n-- > 0 && !done())
      out.push_back(static_cast<char>(byte()));
    return out;
  }

private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

struct world_under_test : sim::rig {
  explicit world_under_test(uint64_t seed) : rig(seed) {
    auto& w = d.net();
    sim::link_params link;
    link.latency_us = 1000;
    link.bandwidth_bytes_per_s = 100'000'000;
    w.set_default_link(link);
    for (auto h : {"pop", "agent", "visitors", "mallory"})
      w.add_host(h);
    sim::spawn_app_service(d.sys(), w.io("agent"), service_port, service_key);
    pop_params pp;
    pp.e = make_env("pop", 1);
    pp.tunnel_port = tunnel_port;
    auto sc = service("echo", "the secret", public_port);
    sc.allow = {"sam"};
    pp.services.push_back(sc);
    pp.principals.push_back(principal("sam", "sam secret"));
    d.net().register_actor("pop", spawn_pop_server(d.sys(), std::move(pp)));
    auto ap = agent("agent", "echo", "the secret",
                    {pop_endpoint{"pop", "pop", tunnel_port, "eu"}}, service_port, 2);
    d.net().register_actor("agent", spawn_agent(d.sys(), std::move(ap)));
  }

  // The peer's keys (scrypt is slow on purpose; the simulator caches them).
  static const net::login_key& service_key_pair() {
    static const auto k = sim::cached_login_key("the secret", net::service_salt("echo"));
    return k;
  }
  static const net::login_key& principal_key_pair() {
    static const auto k = sim::cached_login_key("sam secret", net::principal_salt("sam"));
    return k;
  }

  std::shared_ptr<sim::visitor_result> visit(uint64_t bytes, uint64_t seed) {
    return rig::visit("visitors", "pop", public_port, bytes, seed, service_key);
  }
};

constexpr uint8_t frame_types[] = {1, 2, 3, 4, 5, 16, 17, 18, 19, 20, 32, 33, 34, 0, 99};

uint32_t pick_stream(reader& in) {
  auto b = in.byte();
  // High bit: a stream the POP opened; else a small id, odd ones being the
  // ones a dialer may open.
  return (b & 0x80) ? (sim::seen_stream_bit | (b & 0x7f)) : (b & 0x0f);
}

sim::hostile_step frame_step(uint8_t type, uint32_t sid, std::string payload) {
  sim::hostile_step s;
  s.what = sim::hostile_step::kind::frame;
  s.type = type;
  s.stream_id = sid;
  s.bytes = std::move(payload);
  return s;
}

std::string u32_bytes(uint32_t x) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i)
    out[i] = static_cast<char>(x >> (24 - 8 * i));
  return out;
}

/// One step of the script from the input; visitors to start are counted
/// into `visitors_at` (the step index before which each starts).
sim::hostile_step read_step(reader& in, size_t index,
                            std::vector<size_t>& visitors_at) {
  switch (in.byte() % 8) {
    case 0: { // any frame, a short payload
      auto type = frame_types[in.byte() % sizeof(frame_types)];
      auto s = frame_step(type, pick_stream(in), in.bytes(in.byte()));
      s.flags = in.byte() & 0x03 ? 0 : in.byte();
      return s;
    }
    case 1: { // a frame with a u32: credit, reset code, ping
      static constexpr uint8_t types[] = {18, 20, 32, 33};
      auto type = types[in.byte() % 4];
      auto sid = type >= 32 ? 0 : pick_stream(in);
      auto v = in.u32();
      return frame_step(type, sid, type >= 32 ? u32_bytes(v) + u32_bytes(v) : u32_bytes(v));
    }
    case 2: { // a well-formed OPEN with any fields
      net::open_msg m;
      auto flags = in.byte();
      m.resumable = flags & 1;
      m.resume = flags & 2;
      m.session_id = in.bytes(flags & 4 ? net::session_id_bytes : in.byte() % 20);
      m.agent_id = flags & 8 ? "joe" : in.bytes(in.byte() % 8);
      m.principal = flags & 16 ? "sam" : in.bytes(in.byte() % 8);
      m.peer = in.bytes(in.byte() % 8);
      return frame_step(16, pick_stream(in), net::encode(m).to_string());
    }
    case 3: { // data, up to the largest frame
      auto sid = pick_stream(in);
      size_t n = (size_t{in.byte()} << 8 | in.byte()) % (net::frame_data_bytes_max + 1);
      return frame_step(17, sid, std::string(n, static_cast<char>(index)));
    }
    case 4: { // time passes
      sim::hostile_step s;
      s.what = sim::hostile_step::kind::wait;
      s.us = uint64_t{in.byte()} * 10'000;
      return s;
    }
    case 5: { // raw bytes, in the middle of anything
      sim::hostile_step s;
      s.bytes = in.bytes(in.byte());
      return s;
    }
    case 6: // an honest visitor arrives now
      if (visitors_at.size() < visitors_max)
        visitors_at.push_back(index);
      return frame_step(32, 0, u32_bytes(0) + u32_bytes(static_cast<uint32_t>(index)));
    default: { // several frames at once on one stream
      auto sid = pick_stream(in);
      sim::hostile_step s;
      auto n = 1 + in.byte() % 16;
      for (int i = 0; i < n; ++i)
        s.bytes += sim::frame_bytes(17, 0, sid, std::string(in.byte(), 'x'));
      return s;
    }
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  reader in(data, size);
  auto mode = in.byte();
  world_under_test w(mode >> 1);
  auto login = std::make_shared<sim::hostile_login>();
  net::hello_msg hello;
  hello.service = "echo";
  if (mode & 1) { // a principal on the patch panel
    hello.agent_id = "sam";
    hello.role = static_cast<uint8_t>(net::peer_role::client);
    login->seed = world_under_test::principal_key_pair().seed;
  } else { // a second agent of the service
    hello.agent_id = "mallory";
    login->seed = world_under_test::service_key_pair().seed;
  }
  login->hello = net::encode(hello).to_string();
  login->crypto = w.crypto;
  sim::hostile_peer_params pp;
  pp.io = w.d.net().io("mallory");
  pp.pop_host = "pop";
  pp.pop_port = tunnel_port;
  pp.login = login;
  pp.result = std::make_shared<sim::hostile_result>();
  std::vector<size_t> visitors_at;
  while (!in.done() && pp.script.size() < steps_max)
    pp.script.push_back(read_step(in, pp.script.size(), visitors_at));
  sim::hostile_step bye;
  bye.what = sim::hostile_step::kind::abort;
  pp.script.push_back(bye);
  auto peer = pp.result;

  // Joe's tunnel first, then the peer; visitors start as the script goes.
  w.d.run_for(1'000'000);
  sim::spawn_hostile_peer(w.d.sys(), pp);
  std::vector<std::shared_ptr<sim::visitor_result>> during;
  for (size_t i = 0; i < visitors_at.size(); ++i) {
    w.d.run_for(20'000);
    during.push_back(w.visit(4096, i));
  }
  // The script ends by aborting; whatever it did, the POP must let go.
  FUZZ_CHECK(w.d.run_until([&] { return peer->closed; }, 60'000'000));
  FUZZ_CHECK(!peer->malformed_from_pop);
  auto all_done = [&] {
    for (auto& r : during)
      if (!r->done)
        return false;
    return true;
  };
  FUZZ_CHECK(w.d.run_until(all_done, 30'000'000));
  for (auto& r : during)
    FUZZ_CHECK(!r->corrupt || !(mode & 1)); // only a compromised agent may lie
  auto after = w.visit(20'000, 99);
  FUZZ_CHECK(w.d.run_until([&] { return after->done; }, 30'000'000));
  if (!after->ok && std::getenv("DRTP_FUZZ_VERBOSE"))
    std::fprintf(stderr, "after: %s, %llu of %llu bytes back\n", after->error.c_str(),
                 static_cast<unsigned long long>(after->bytes_back),
                 static_cast<unsigned long long>(after->bytes_sent));
  if (!after->ok && std::getenv("DRTP_FUZZ_VERBOSE"))
    for (auto& l : w.d.trace_lines())
      std::fprintf(stderr, "%s\n", l.c_str());
  FUZZ_CHECK(after->ok);
  // Nothing left behind: Joe's tunnel (two ends) is all that stays open,
  // at the latest once a patch-panel session the peer opened has waited out
  // its resume timeout (30 s) at the serve end.
  FUZZ_CHECK(w.d.run_until([&] { return w.d.net().open_connections() == 2; },
                           40'000'000));
  if (std::getenv("DRTP_FUZZ_VERBOSE"))
    std::fprintf(stderr, "logged in %d, %zu steps, %zu visitors, %llu frames from the POP, %zu streams opened by it\n",
                 peer->logged_in, pp.script.size(), during.size(),
                 static_cast<unsigned long long>(peer->frames_received),
                 peer->streams_opened.size());
  return 0;
}
