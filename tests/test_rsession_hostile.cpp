// The patch panel's resumable session against a hostile POP, in the
// simulator: the real agent (drtp serve) holds a tunnel to a scripted POP
// ("evil") that speaks frames and records by hand.
//
// - Resume only by its two ends: evil knows everything a POP carrying the
//   session saw (its id, both public key halves, the principal: tapped from
//   the honest POP's traffic), yet cannot resume it, write into the private
//   service, or reset it; a stream opened by another principal cannot
//   either. The honest session goes on, byte for byte.
// - Memory: evil opens a session as a principal and pushes into a service
//   that reads nothing; the agent takes only what its bound allows.
//
// The attack records are built by hand (record type + length + body), so
// this file also compiles against the record layer before the fix, where it
// fails (how the tests were checked against the old code).

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "actors/agent.hpp"
#include "actors/messages.hpp"
#include "actors/pop_server.hpp"
#include "caf/all.hpp"
#include "net/openssl_crypto.hpp"
#include "net/wire/control.hpp"
#include "net/wire/frame.hpp"
#include "net/wire/frame_writer.hpp"
#include "net/wire/handshake.hpp"
#include "sim/apps.hpp"
#include "sim/driver.hpp"
#include "sim/rig.hpp"
#include "sim/scenario.hpp"

using namespace drtp;

namespace {

constexpr uint16_t tunnel_port = 7000;
constexpr uint16_t service_port = 5432;
constexpr uint16_t listen_port = 6000;

std::string be64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>(v >> (56 - 8 * i));
  return out;
}

/// One record: type, u32 body length, body.
std::string rec(uint8_t type, const std::string& body) {
  std::string h(5, '\0');
  h[0] = static_cast<char>(type);
  for (int i = 0; i < 4; ++i)
    h[1 + i] = static_cast<char>(body.size() >> (24 - 8 * i));
  return h + body;
}

constexpr uint8_t rec_hello = 1, rec_resume = 3, rec_resumed = 4, rec_data = 5,
                  rec_ack = 6, rec_fin = 7, rec_close = 8, rec_proof = 9;

/// What the scripted POP saw and holds, shared with the test.
struct evil_state {
  net::conn_id conn = 0;
  bool up = false;
  std::map<uint32_t, std::string> bytes_in; // data payload per stream
  std::set<uint32_t> reset;                 // streams the agent reset
  std::vector<uint32_t> opened;             // streams a client opened
  std::map<uint32_t, uint64_t> credit;      // our credit per stream
  // pushing: stream, bytes left to push, bytes the agent let us push
  uint32_t push_sid = 0;
  uint64_t push_left = 0;
  uint64_t pushed = 0;
};

/// A POP by hand: accepts the agent's tunnel, accepts any proof, answers
/// pings; the test writes frames on its link; it tracks credit and can push
/// data records as fast as the agent's credit allows.
caf::behavior evil_pop(caf::event_based_actor* self, caf::actor io,
                       std::shared_ptr<evil_state> st, uint32_t window_bytes) {
  self->send(io, net::listen_req{1, "0.0.0.0", tunnel_port, false});
  auto dec = std::make_shared<net::frame_decoder>();
  auto writer = std::make_shared<net::frame_writer>();
  auto push = [=] {
    auto& c = st->credit[st->push_sid];
    while (st->push_left > 0 && c >= 16 * 1024 + 5) {
      auto rec_bytes = rec(rec_data, std::string(16 * 1024, 'P'));
      c -= rec_bytes.size();
      st->push_left -= std::min<uint64_t>(st->push_left, 16 * 1024);
      st->pushed += 16 * 1024;
      self->send(io, net::write_req{st->conn, {writer->data_copy(
                                                 st->push_sid, rec_bytes.data(),
                                                 rec_bytes.size())}});
    }
  };
  return {
    [](const net::listening&) {},
    [=](const net::accepted& ev) {
      st->conn = ev.id;
      self->send(io, net::adopt_req{ev.id, caf::actor_cast<caf::actor>(self)});
    },
    [=](const net::received& ev) {
      std::vector<net::frame> frames;
      dec->feed(ev.data, frames);
      for (auto& f : frames) {
        switch (f.type) {
          case net::frame_type::hello: {
            net::challenge_msg ch;
            ch.nonce = std::string(net::nonce_bytes, 'n');
            self->send(io, net::write_req{ev.id, {writer->control(
                                                    net::frame_type::challenge, 0,
                                                    net::encode(ch))}});
            break;
          }
          case net::frame_type::proof: {
            net::accept_msg acc;
            acc.tunnel_id = "evil";
            self->send(io, net::write_req{ev.id, {writer->control(
                                                    net::frame_type::accept, 0,
                                                    net::encode(acc))}});
            st->up = true;
            break;
          }
          case net::frame_type::ping:
            self->send(io, net::write_req{ev.id, {writer->pong(f.payload)}});
            break;
          case net::frame_type::data:
            if (st->bytes_in[f.stream_id].size() < (1u << 20))
              st->bytes_in[f.stream_id] += f.payload.to_string();
            // A well-behaved tunnel end: credit back for what arrived.
            self->send(io, net::write_req{ev.id, {writer->window(
                                                    f.stream_id,
                                                    static_cast<uint32_t>(
                                                      f.payload.size()))}});
            break;
          case net::frame_type::window:
            st->credit[f.stream_id] += net::read_u32(f.payload.data());
            if (f.stream_id == st->push_sid)
              push();
            break;
          case net::frame_type::rst:
            st->reset.insert(f.stream_id);
            break;
          case net::frame_type::open:
            st->opened.push_back(f.stream_id);
            break;
          default:
            break;
        }
      }
    },
    [=](const std::string& start_push, uint32_t sid, uint64_t bytes) {
      (void) start_push;
      st->push_sid = sid;
      st->push_left = bytes;
      st->credit.emplace(sid, window_bytes);
      push();
    },
    [](const net::read_closed&) {},
    [](const net::sent&) {},
    [](const net::closed&) {},
  };
}

/// An application that connects to drtp connect's port and never reads.
caf::behavior idle_app(caf::event_based_actor* self, caf::actor io) {
  net::connect_req req;
  req.tag = 1;
  req.host = "sam";
  req.port = listen_port;
  self->send(io, req);
  return {
    [=](const net::connected& ev) {
      self->send(io, net::pause_read_req{ev.id});
    },
    [](const net::connect_failed&) {},
    [](const net::received&) {},
    [](const net::read_closed&) {},
    [](const net::sent&) {},
    [](const net::closed&) {},
  };
}

/// A service that accepts and never reads.
caf::behavior sink_service(caf::event_based_actor* self, caf::actor io) {
  self->send(io, net::listen_req{1, "0.0.0.0", service_port, false});
  return {
    [](const net::listening&) {},
    [=](const net::accepted& ev) {
      self->send(io, net::adopt_req{ev.id, caf::actor_cast<caf::actor>(self)});
      self->send(io, net::pause_read_req{ev.id});
    },
    [](const net::received&) {},
    [](const net::read_closed&) {},
    [](const net::sent&) {},
    [](const net::closed&) {},
  };
}

/// What the honest POP reads: per link, the frames; OPEN frames of
/// resumable streams (the POP's view of each session) are kept.
struct pop_tap {
  std::map<uint64_t, net::frame_decoder> decoders;
  std::vector<net::open_msg> opens;
  std::map<uint64_t, std::map<uint32_t, std::string>> data; // conn -> sid -> bytes

  void feed(uint64_t conn, const std::string& bytes) {
    std::vector<net::frame> frames;
    decoders[conn].feed(net::chunk::copy_of(bytes), frames);
    for (auto& f : frames) {
      if (f.type == net::frame_type::open) {
        net::open_msg open;
        if (net::decode(f.payload, open) && open.resumable)
          opens.push_back(open);
      } else if (f.type == net::frame_type::data) {
        auto& d = data[conn][f.stream_id];
        if (d.size() < 4096)
          d += f.payload.to_string();
      }
    }
  }
};

struct world_fixture : sim::rig {
  explicit world_fixture(uint64_t seed) : rig(seed) {
    auto& w = d.net();
    sim::link_params link;
    link.latency_us = 1000;
    link.bandwidth_bytes_per_s = 100'000'000;
    w.set_default_link(link);
    for (auto h : {"pop", "evil", "joe", "sam"})
      w.add_host(h);
    w.set_tap([this](const std::string& host, uint64_t conn, const std::string& bytes) {
      if (host == "pop")
        tap.feed(conn, bytes);
    });
  }

  env make_env(const std::string& host) {
    return rig::make_env(host, ++salt);
  }

  void start_pop() {
    pop_params pp;
    pp.e = make_env("pop");
    pp.tunnel_port = tunnel_port;
    auto sc = service("db", "service secret", 8000);
    sc.is_public = false;
    sc.allow = {"sam"};
    pp.services.push_back(sc);
    pp.principals.push_back(principal("sam", "sams secret"));
    d.net().register_actor("pop", spawn_pop_server(d.sys(), std::move(pp)));
  }

  agent_params controller(const std::string& host, std::vector<std::string> pops) {
    agent_params ap;
    ap.e = make_env(host);
    for (auto& p : pops)
      ap.pops.push_back(pop_endpoint{p, p, tunnel_port, "r-" + p});
    ap.tunnels_target = static_cast<uint32_t>(pops.size());
    ap.tls = std::make_shared<net::tls_client_config>();
    ap.service = "db";
    ap.resume_timeout_ms = 30000;
    return ap;
  }

  void start_agent(std::vector<std::string> pops) {
    auto ap = controller("joe", std::move(pops));
    ap.agent_id = "joe";
    ap.signing_key = sim::cached_login_key("service secret", net::service_salt("db")).seed;
    ap.local_host = "joe";
    ap.local_port = service_port;
    d.net().register_actor("joe", spawn_agent(d.sys(), std::move(ap)));
  }

  void start_client() {
    auto ap = controller("sam", {"pop"});
    ap.agent_id = "sam";
    ap.signing_key = sim::cached_login_key("sams secret", net::principal_salt("sam")).seed;
    ap.client = true;
    ap.listen_host = "sam";
    ap.listen_port = listen_port;
    d.net().register_actor("sam", spawn_agent(d.sys(), std::move(ap)));
  }

  caf::actor start_evil(uint32_t window_bytes) {
    auto a = d.sys().spawn(evil_pop, d.net().io("evil"), evil, window_bytes);
    d.net().register_actor("evil", a);
    return a;
  }

  /// Evil opens a resumable stream on the agent's tunnel, as a POP would
  /// for a client's stream, stamped with `principal`, and sends `records`.
  void evil_open(uint32_t sid, const std::string& session_id, bool resume,
                 const std::string& principal, const std::string& records) {
    net::open_msg open;
    open.peer = "patch panel";
    open.resumable = true;
    open.resume = resume;
    open.session_id = session_id;
    open.agent_id = resume ? "joe" : "";
    open.principal = principal;
    net::chunk_list out{writer.control(net::frame_type::open, sid, net::encode(open))};
    if (!records.empty())
      out.push_back(writer.data_copy(sid, records.data(), records.size()));
    caf::anon_send(d.net().io("evil"), net::write_req{evil->conn, std::move(out)});
  }

  uint64_t salt = 0;
  std::shared_ptr<evil_state> evil = std::make_shared<evil_state>();
  pop_tap tap;
  net::frame_writer writer;
};

} // namespace

TEST(rsession_hostile, a_pop_that_saw_the_session_cannot_resume_write_or_reset_it) {
  world_fixture f{3};
  sim::spawn_app_service(f.d.sys(), f.d.net().io("joe"), service_port, 0x5a);
  f.start_pop();
  f.start_evil(1024 * 1024);
  f.start_agent({"pop", "evil"});
  f.start_client();
  f.d.run_for(2'000'000);
  ASSERT_TRUE(f.evil->up);

  // An honest session through sam: many request-response rounds.
  auto result = f.visit("sam", "sam", listen_port, 3000, 7, 0x5a,
                        sim::workload_kind::request_response, 300);
  ASSERT_TRUE(f.d.run_until([&] { return !f.tap.opens.empty(); }, 2'000'000));
  f.d.run_for(200'000);
  ASSERT_FALSE(result->done) << result->error;

  // Everything the honest POP saw: the session id, the principal, and the
  // first records of both directions (the client's hello, the welcome).
  auto seen = f.tap.opens.back();
  ASSERT_EQ(seen.session_id.size(), net::session_id_bytes);
  std::string hello_seen;
  for (auto& [conn, streams] : f.tap.data)
    for (auto& [sid, bytes] : streams)
      if (!bytes.empty() && bytes[0] == static_cast<char>(rec_hello))
        hello_seen = bytes.substr(0, 5 + 32);
  ASSERT_EQ(hello_seen.size(), 37u) << "the tap saw the client's first record";

  // 1. A resume that acts before any proof: data, ack, fin and close.
  std::string nonce(32, 'c');
  f.evil_open(2, seen.session_id, true, "sam",
              rec(rec_resume, nonce) + rec(rec_data, "EVIL BYTES")
                + rec(rec_ack, be64(0) + std::string(1, '\1')) + rec(rec_fin, "")
                + rec(rec_close, ""));
  // 2. A resume that answers the challenge with a made-up proof.
  f.evil_open(4, seen.session_id, true, "sam", rec(rec_resume, nonce));
  // 3. Another principal's stream for the session.
  f.evil_open(6, seen.session_id, true, "eve", rec(rec_resume, nonce));
  // 4. The session's first records replayed on a fresh open of its id.
  f.evil_open(8, seen.session_id, false, "sam", hello_seen + rec(rec_data, "EVIL"));
  f.d.run_for(100'000);
  auto& answer = f.evil->bytes_in[4];
  if (answer.size() >= 5 + 72 && answer[0] == static_cast<char>(rec_resumed)) {
    // Answer the challenge as the client would, with a MAC it cannot make.
    auto proof = rec(rec_proof, answer.substr(5 + 32, 8) + std::string(32, 'm'))
                 + rec(rec_data, "EVIL AGAIN");
    caf::anon_send(f.d.net().io("evil"),
                   net::write_req{f.evil->conn,
                                  {f.writer.data_copy(4, proof.data(), proof.size())}});
  }
  f.d.run_for(200'000);

  EXPECT_TRUE(f.evil->reset.count(2)) << "the stream that spoke before its proof is reset";
  EXPECT_TRUE(f.evil->reset.count(4)) << "the stream with a made-up proof is reset";
  EXPECT_TRUE(f.evil->reset.count(6)) << "another principal's stream is reset";
  EXPECT_TRUE(f.evil->reset.count(8)) << "a second open of the session is reset";
  // The honest session goes on and completes, byte for byte: nothing of
  // evil's reached the service, nothing reset the session.
  ASSERT_TRUE(f.d.run_until([&] { return result->done; }, 20'000'000));
  EXPECT_TRUE(result->ok) << result->error;
  EXPECT_EQ(result->bytes_back, 3000u * 300u);
  EXPECT_FALSE(f.trace_has("resumed on a new path"));
  EXPECT_TRUE(f.trace_has("refused a stream for the session"));
  std::printf("figure: hostile resume attempts refused: %zu of 4\n", f.evil->reset.size());
}

TEST(rsession_hostile, a_lost_path_resumes_only_with_the_proof) {
  // The honest path goes away (sam's POP crashes mid-session, comes back):
  // while the session has no path, evil tries to take it over; the client
  // resumes through the restarted POP and finishes.
  world_fixture f{5};
  sim::spawn_app_service(f.d.sys(), f.d.net().io("joe"), service_port, 0x5a);
  f.start_pop();
  f.start_evil(1024 * 1024);
  f.start_agent({"pop", "evil"});
  f.start_client();
  f.d.run_for(2'000'000);
  auto result = f.visit("sam", "sam", listen_port, 3000, 9, 0x5a,
                        sim::workload_kind::request_response, 300);
  ASSERT_TRUE(f.d.run_until([&] { return result->bytes_back > 0; }, 2'000'000));
  ASSERT_FALSE(f.tap.opens.empty());
  auto seen = f.tap.opens.back();
  f.d.net().partition("sam", "pop", true);
  f.d.net().crash("pop", sim::crash_mode::reset);
  f.d.run_for(300'000);
  std::string nonce(32, 'c');
  f.evil_open(2, seen.session_id, true, "sam",
              rec(rec_resume, nonce) + rec(rec_close, ""));
  f.evil_open(4, seen.session_id, true, "sam",
              rec(rec_resume, nonce)
                + rec(rec_proof, be64(0) + std::string(32, 'm')) + rec(rec_fin, ""));
  f.d.run_for(200'000);
  EXPECT_TRUE(f.evil->reset.count(2));
  EXPECT_TRUE(f.evil->reset.count(4));
  f.d.net().heal("sam", "pop");
  f.d.net().restart("pop");
  f.start_pop();
  ASSERT_TRUE(f.d.run_until([&] { return result->done; }, 40'000'000));
  EXPECT_TRUE(result->ok) << result->error;
  EXPECT_TRUE(f.trace_has("resumed on a new path"));
}

TEST(rsession_hostile, a_principal_pushing_into_a_service_that_never_reads_is_bounded) {
  // Evil acts as a principal's path: a fresh session (a valid X25519 key),
  // then data records as fast as the agent's stream credit allows, into a
  // service that accepts and never reads. What the agent took is what it
  // holds (in its session, its socket's queue, the service's buffer).
  world_fixture f{11};
  f.d.sys().spawn(sink_service, f.d.net().io("joe"));
  auto evil = f.start_evil(1024 * 1024);
  f.start_agent({"evil"});
  f.d.run_for(2'000'000);
  ASSERT_TRUE(f.evil->up);
  auto crypto = net::make_openssl_crypto();
  auto client_key = crypto->x25519_public(std::string(32, 'k'));
  f.evil_open(2, std::string(net::session_id_bytes, 's'), false, "sam",
              rec(rec_hello, client_key));
  f.d.run_for(100'000);
  constexpr uint64_t budget = 64ull << 20;
  caf::anon_send(evil, std::string("push"), uint32_t{2}, budget);
  f.d.run_for(10'000'000);
  auto held = f.evil->pushed;
  std::printf("figure: agent took %llu bytes from a principal into a service that "
              "reads nothing (of %llu pushed at it)\n",
              static_cast<unsigned long long>(held),
              static_cast<unsigned long long>(budget));
  // The stream window (1 MiB) plus the service's receive buffer, and the
  // session's bound of 1 MiB not taken by the local side: never more.
  EXPECT_LE(held, 3ull << 20);
}


TEST(rsession_hostile, the_connect_end_is_bounded_too) {
  // The same at drtp connect: evil is the client's only POP and plays the
  // serve end (a welcome with a valid key), then pushes into an
  // application that never reads.
  world_fixture f{13};
  auto evil = f.start_evil(1024 * 1024);
  auto ap = f.controller("sam", {"evil"});
  ap.agent_id = "sam";
  ap.signing_key = sim::cached_login_key("sams secret", net::principal_salt("sam")).seed;
  ap.client = true;
  ap.listen_host = "sam";
  ap.listen_port = listen_port;
  f.d.net().register_actor("sam", spawn_agent(f.d.sys(), std::move(ap)));
  f.d.run_for(2'000'000);
  ASSERT_TRUE(f.evil->up);
  f.d.sys().spawn(idle_app, f.d.net().io("sam"));
  ASSERT_TRUE(f.d.run_until([&] { return !f.evil->opened.empty(); }, 2'000'000));
  auto sid = f.evil->opened.front();
  auto crypto = net::make_openssl_crypto();
  auto serve_key = crypto->x25519_public(std::string(32, 'w'));
  auto welcome = rec(2, serve_key + "joe");
  caf::anon_send(f.d.net().io("evil"),
                 net::write_req{f.evil->conn,
                                {f.writer.data_copy(sid, welcome.data(), welcome.size())}});
  f.d.run_for(100'000);
  constexpr uint64_t budget = 64ull << 20;
  caf::anon_send(evil, std::string("push"), sid, budget);
  f.d.run_for(10'000'000);
  std::printf("figure: drtp connect took %llu bytes for an application that reads "
              "nothing (of %llu pushed at it)\n",
              static_cast<unsigned long long>(f.evil->pushed),
              static_cast<unsigned long long>(budget));
  EXPECT_LE(f.evil->pushed, 3ull << 20);
}
