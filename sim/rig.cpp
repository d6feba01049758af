#include "sim/rig.hpp"

#include "control/agent_follower.hpp"

#include <cstdio>
#include <cstdlib>

#include "caf/all.hpp"
#include "net/openssl_crypto.hpp"
#include "net/seam/io.hpp"
#include "net/wire/handshake.hpp"
#include "sim/scenario.hpp"

namespace drtp::sim {

rig::rig(uint64_t seed) : d(seed), crypto(net::make_openssl_crypto()) {
}

rig::~rig() {
  if (std::getenv("DRTP_SIM_TRACE"))
    for (auto& l : d.trace_lines())
      std::printf("%s\n", l.c_str());
}

env rig::make_env(const std::string& host, uint64_t salt) {
  env e;
  e.io = d.net().io(host);
  e.trace = d.trace();
  e.rng = net::make_seeded_entropy(d.seed() * 1000 + salt);
  e.crypto = crypto;
  e.host = host;
  // One registry per simulated host, as a process has one.
  auto& stats = stats_[host];
  if (!stats)
    stats = net::make_metrics();
  e.stats = stats;
  auto& sessions = sessions_[host];
  if (!sessions)
    sessions = std::make_shared<net::session_table>();
  e.sessions = sessions;
  return e;
}

service_config rig::service(const std::string& name, const std::string& secret,
                            uint16_t public_port) {
  service_config sc;
  sc.name = name;
  sc.public_key = cached_login_key(secret, net::service_salt(name)).public_key;
  sc.public_port = public_port;
  return sc;
}

principal_config rig::principal(const std::string& name, const std::string& secret) {
  principal_config pc;
  pc.name = name;
  pc.public_key = cached_login_key(secret, net::principal_salt(name)).public_key;
  return pc;
}

agent_params rig::agent(const std::string& host, const std::string& service,
                        const std::string& secret, std::vector<pop_endpoint> pops,
                        uint16_t local_port, uint64_t salt) {
  agent_params ap;
  ap.e = make_env(host, salt);
  ap.pops = std::move(pops);
  ap.tls = std::make_shared<net::tls_client_config>();
  ap.service = service;
  ap.agent_id = "joe";
  ap.signing_key = cached_login_key(secret, net::service_salt(service)).seed;
  ap.local_host = host;
  ap.local_port = local_port;
  return ap;
}

std::shared_ptr<visitor_result> rig::visit(const std::string& from, const std::string& pop,
                                           uint16_t port, uint64_t bytes, uint64_t seed,
                                           uint8_t key, workload_kind kind, uint32_t rounds) {
  return start_visit(from, pop, port, bytes, seed, key, kind, rounds).result;
}

rig::visit_handle rig::start_visit(const std::string& from, const std::string& pop,
                                   uint16_t port, uint64_t bytes, uint64_t seed, uint8_t key,
                                   workload_kind kind, uint32_t rounds) {
  visitor_params vp;
  vp.kind = kind;
  vp.rounds = rounds;
  vp.io = d.net().io(from);
  vp.host = pop;
  vp.port = port;
  vp.bytes = bytes;
  vp.seed = seed;
  vp.key = key;
  vp.result = std::make_shared<visitor_result>();
  vp.now_us = [this] { return d.now_us(); };
  auto r = vp.result;
  return {spawn_visitor(d.sys(), std::move(vp)), r};
}

namespace {

caf::behavior one_fetch(caf::event_based_actor* self, caf::actor client, http_fetch f,
                        std::shared_ptr<fetch_result> out) {
  self->request(client, caf::infinite, std::move(f))
    .then(
      [=](http::response& r) {
        out->resp = std::move(r);
        out->done = true;
        self->quit();
      },
      [=](caf::error& e) {
        out->error = describe_http_error(e);
        out->done = true;
        self->quit();
      });
  return {[](const caf::message&) {}};
}

caf::behavior ask_tunnels(caf::event_based_actor* self, caf::actor follower,
                          std::shared_ptr<tunnels_seen> out) {
  auto give_up = [=](caf::error&) {
    out->done = true;
    self->quit();
  };
  self->request(follower, caf::infinite, control::follower_agent_atom::value)
    .then(
      [=](caf::actor& agent) {
        if (!agent) {
          out->done = true;
          self->quit();
          return;
        }
        self->request(agent, caf::infinite, agent_tunnels_atom::value)
          .then(
            [=](agent_tunnels& t) {
              for (auto& x : t.tunnels)
                if (x.up)
                  out->up.insert(x.pop);
              out->all = t.tunnels.size();
              out->done = true;
              self->quit();
            },
            give_up);
      },
      give_up);
  return {[](const caf::message&) {}};
}

} // namespace

tunnels_seen rig::follower_tunnels(caf::actor follower, uint64_t timeout_us) {
  auto out = std::make_shared<tunnels_seen>();
  d.sys().spawn(ask_tunnels, std::move(follower), out);
  d.run_until([&] { return out->done; }, timeout_us);
  return *out;
}

std::shared_ptr<fetch_result> rig::fetch(caf::actor client, http_fetch f, uint64_t timeout_us) {
  auto out = std::make_shared<fetch_result>();
  d.sys().spawn(one_fetch, std::move(client), std::move(f), out);
  d.run_until([&] { return out->done; }, timeout_us);
  return out;
}

size_t rig::trace_count(const std::string& needle) const {
  size_t n = 0;
  for (auto& l : d.trace_lines())
    n += l.find(needle) != std::string::npos ? 1 : 0;
  return n;
}

} // namespace drtp::sim
