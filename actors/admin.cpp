#include "actors/admin.hpp"

#include <map>

#include "actors/messages.hpp"
#include "caf/all.hpp"
#include "net/seam/assert.hpp"
#include "net/seam/crypto.hpp"

namespace drtp {

namespace {

/// A command line is short; anything longer is not one of ours.
constexpr size_t command_bytes_max = 160;

using admin_idle_atom = caf::atom_constant<caf::atom("adminidle")>;

class admin_actor final : public caf::event_based_actor {
public:
  admin_actor(caf::actor_config& cfg, admin_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)) {
    DRTP_ASSERT(p_.token.size() >= admin_token_bytes_min, "the admin token is long");
    DRTP_ASSERT(p_.connections_max >= 1, "the admin port takes a connection");
  }

  const char* name() const override {
    return "drtp.admin";
  }

  caf::behavior make_behavior() override {
    send(p_.e.io, net::listen_req{1, p_.host, p_.port, false});
    return {
      [this](const net::listening& ev) {
        trace("admin commands on " + p_.host + ":" + std::to_string(ev.port));
      },
      [this](const net::listen_failed& ev) {
        if (p_.observer)
          send(p_.observer, pop_failed{"admin port: " + ev.what});
        quit();
      },
      [this](const net::accepted& ev) { on_accepted(ev); },
      [this](const net::received& ev) { on_received(ev); },
      [this](const net::read_closed& ev) {
        if (waiting(ev.id))
          answer(ev.id, "error: no command\n");
      },
      [](const net::sent&) {},
      [this](const net::closed& ev) { conns_.erase(ev.id); },
      [this](admin_idle_atom, net::conn_id id) {
        if (waiting(id)) {
          trace("closed an admin connection from " + conns_[id].source
                + " that sent no command in " + std::to_string(p_.idle_timeout_ms)
                + " ms");
          answer(id, "error: no command within "
                       + std::to_string(p_.idle_timeout_ms) + " ms\n");
        }
      },
    };
  }

private:
  /// An admin connection: reading its line, then running its command.
  struct conn_state {
    enum phase_t : uint8_t { reading, running } phase = reading;
    std::string line;
    std::string source;
    uint64_t seq = 0; // arrival order: the oldest goes first
  };

  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, "admin", what);
  }

  bool waiting(net::conn_id id) const {
    auto i = conns_.find(id);
    return i != conns_.end() && i->second.phase == conn_state::reading;
  }

  void on_accepted(const net::accepted& ev) {
    if (conns_.size() >= p_.connections_max)
      evict();
    DRTP_ASSERT(conns_.size() < p_.connections_max, "eviction makes room");
    auto& c = conns_[ev.id];
    c.source = ev.peer_host;
    c.seq = ++seq_;
    send(p_.e.io, net::adopt_req{ev.id, this});
    delayed_send(this, p_.e.clock->real_delay(std::chrono::milliseconds(p_.idle_timeout_ms)),
                 admin_idle_atom::value, ev.id);
  }

  /// Makes room for a newcomer: the oldest connection of the source that
  /// holds the most goes, so one flooding source only evicts its own.
  void evict() {
    std::map<std::string, size_t> per_source;
    for (auto& [id, c] : conns_)
      ++per_source[c.source];
    auto top = per_source.begin();
    for (auto i = per_source.begin(); i != per_source.end(); ++i)
      if (i->second > top->second)
        top = i;
    auto victim = conns_.end();
    for (auto i = conns_.begin(); i != conns_.end(); ++i)
      if (i->second.source == top->first
          && (victim == conns_.end() || i->second.seq < victim->second.seq))
        victim = i;
    DRTP_ASSERT(victim != conns_.end(), "a full table has a connection to evict");
    send(p_.e.io, net::abort_req{victim->first});
    conns_.erase(victim);
  }

  void on_received(const net::received& ev) {
    auto i = conns_.find(ev.id);
    if (i == conns_.end() || i->second.phase != conn_state::reading)
      return;
    auto& line = i->second.line;
    line.append(ev.data.data(), std::min(ev.data.size(), command_bytes_max + 1));
    auto nl = line.find('\n');
    if (nl == std::string::npos) {
      if (line.size() > command_bytes_max)
        answer(ev.id, "error: command too long\n");
      return;
    }
    auto cmd = line.substr(0, nl);
    if (!cmd.empty() && cmd.back() == '\r')
      cmd.pop_back();
    auto sp = cmd.find(' ');
    auto token = cmd.substr(0, sp);
    cmd = sp == std::string::npos ? std::string{} : cmd.substr(sp + 1);
    if (!net::equal_ct(token, p_.token)) {
      // Neither the token tried nor the command: the line may be a secret.
      trace("refused an admin command from " + i->second.source + ": bad token");
      answer(ev.id, "error: bad token (each command line starts with the admin token)\n");
      return;
    }
    i->second.phase = conn_state::running;
    run(ev.id, cmd);
  }

  void run(net::conn_id id, const std::string& cmd) {
    trace("command '" + cmd + "'");
    if (cmd == "drain") {
      answer(id, "draining\n"); // first: an idle POP exits right away
      send(p_.pop, drain_atom::value);
    } else if (cmd == "status") {
      request(p_.pop, std::chrono::seconds(5), status_atom::value, report_atom::value)
        .then([this, id](const std::string& text) { answer(id, text); },
              [this, id](caf::error&) { answer(id, "error: no answer from the POP\n"); });
    } else {
      answer(id, "error: unknown command '" + cmd.substr(0, command_bytes_max)
                   + "' (drain, status)\n");
    }
  }

  void answer(net::conn_id id, const std::string& text) {
    if (!conns_.erase(id))
      return; // evicted meanwhile
    send(p_.e.io, net::write_req{id, {net::chunk::copy_of(text)}});
    send(p_.e.io, net::close_req{id});
  }

  // Actors hold each other's handles (owner <-> tunnel <-> session); a dead
  // actor lets go of them so that no cycle outlives it.
  void on_exit() override {
    p_ = {};
  }

  admin_params p_;
  std::map<net::conn_id, conn_state> conns_;
  uint64_t seq_ = 0;
};

} // namespace

caf::actor spawn_admin(caf::actor_system& sys, admin_params p) {
  return sys.spawn<admin_actor>(std::move(p));
}

} // namespace drtp
