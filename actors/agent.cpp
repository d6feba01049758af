#include "actors/agent.hpp"

#include <algorithm>

#include "actors/messages.hpp"
#include "actors/tunnel.hpp"
#include "caf/all.hpp"

namespace drtp {

namespace {

class agent_actor final : public caf::event_based_actor {
public:
  agent_actor(caf::actor_config& cfg, agent_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)) {
  }

  const char* name() const override {
    return "drtp.agent";
  }

  caf::behavior make_behavior() override {
    who_ = "agent#" + std::to_string(id());
    set_down_handler([this](caf::down_msg& dm) {
      if (dm.source != tunnel_.address())
        return;
      tunnel_ = nullptr;
      on_tunnel_gone();
    });
    dial();
    return {
      [this](tunnel_up& ev) {
        up_since_ = clock().now();
        is_up_ = true;
        notify(agent_event::up, "tunnel up to POP " + p_.pop_host + ":"
                                  + std::to_string(p_.pop_port) + " for service '"
                                  + p_.service + "'");
      },
      [this](tunnel_rejected& ev) {
        fatal_ = true;
        notify(agent_event::fatal, "POP " + p_.pop_host + ":"
                                     + std::to_string(p_.pop_port)
                                     + " rejected service '" + p_.service
                                     + "': " + ev.message);
        quit();
      },
      [this](tunnel_failed& ev) { last_error_ = ev.what; },
      [this](reconnect_atom) { dial(); },
      [this](status_atom) { return is_up_; },
    };
  }

private:
  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, who_, what);
  }

  void notify(agent_event::kind_t kind, const std::string& what) {
    trace(what);
    if (p_.observer)
      send(p_.observer, agent_event{kind, what});
  }

  void dial() {
    tunnel_params tp;
    tp.e = p_.e;
    tp.role = tunnel_params::agent_side;
    tp.parent = this;
    tp.pop_host = p_.pop_host;
    tp.pop_port = p_.pop_port;
    tp.tls = p_.tls;
    tp.service = p_.service;
    tp.agent_id = p_.agent_id;
    tp.key = p_.key;
    tp.local_host = p_.local_host;
    tp.local_port = p_.local_port;
    tunnel_ = spawn_tunnel(system(), std::move(tp));
    monitor(tunnel_);
  }

  void on_tunnel_gone() {
    if (fatal_)
      return;
    auto now = clock().now();
    if (is_up_ && now - up_since_ >= std::chrono::milliseconds(p_.stable_ms))
      attempt_ = 0;
    bool was_up = is_up_;
    is_up_ = false;
    // Full jitter: a POP that comes back does not see all agents at once.
    uint64_t cap = std::min<uint64_t>(
      p_.backoff_max_ms,
      uint64_t{p_.backoff_initial_ms} << std::min<uint32_t>(attempt_, 16));
    auto delay_ms = p_.e.rng->uniform(cap + 1);
    ++attempt_;
    notify(was_up ? agent_event::down : agent_event::retrying,
           (last_error_.empty() ? "tunnel down" : last_error_) + "; retrying in "
             + std::to_string(delay_ms) + " ms");
    last_error_.clear();
    delayed_send(this, std::chrono::milliseconds(delay_ms),
                 reconnect_atom::value);
  }

  agent_params p_;
  std::string who_;
  caf::actor tunnel_;
  caf::actor_clock::time_point up_since_;
  std::string last_error_;
  uint32_t attempt_ = 0;
  bool is_up_ = false;
  bool fatal_ = false;
};

} // namespace

caf::actor spawn_agent(caf::actor_system& sys, agent_params p) {
  return sys.spawn<agent_actor>(std::move(p));
}

} // namespace drtp
