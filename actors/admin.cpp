#include "actors/admin.hpp"

#include <map>

#include "actors/messages.hpp"
#include "caf/all.hpp"

namespace drtp {

namespace {

/// A command line is short; anything longer is not one of ours.
constexpr size_t command_bytes_max = 64;

class admin_actor final : public caf::event_based_actor {
public:
  admin_actor(caf::actor_config& cfg, env e, std::string host, uint16_t port,
              caf::actor pop, caf::actor observer)
    : caf::event_based_actor(cfg), e_(std::move(e)), host_(std::move(host)),
      port_(port), pop_(std::move(pop)), observer_(std::move(observer)) {
  }

  const char* name() const override {
    return "drtp.admin";
  }

  caf::behavior make_behavior() override {
    send(e_.io, net::listen_req{1, host_, port_, false});
    return {
      [this](const net::listening& ev) {
        e_.trace->emit(e_.host, "admin",
                       "admin commands on " + host_ + ":" + std::to_string(ev.port));
      },
      [this](const net::listen_failed& ev) {
        if (observer_)
          send(observer_, pop_failed{"admin port: " + ev.what});
        quit();
      },
      [this](const net::accepted& ev) {
        if (lines_.size() >= 64) { // an operator tool, not a public service
          send(e_.io, net::abort_req{ev.id});
          return;
        }
        lines_[ev.id];
        send(e_.io, net::adopt_req{ev.id, this});
      },
      [this](const net::received& ev) {
        auto i = lines_.find(ev.id);
        if (i == lines_.end())
          return;
        i->second.append(ev.data.data(), ev.data.size());
        auto nl = i->second.find('\n');
        if (nl == std::string::npos) {
          if (i->second.size() > command_bytes_max)
            answer(ev.id, "error: command too long\n");
          return;
        }
        auto cmd = i->second.substr(0, nl);
        if (!cmd.empty() && cmd.back() == '\r')
          cmd.pop_back();
        run(ev.id, cmd);
      },
      [this](const net::read_closed& ev) {
        if (lines_.count(ev.id))
          answer(ev.id, "error: no command\n");
      },
      [](const net::sent&) {},
      [this](const net::closed& ev) { lines_.erase(ev.id); },
    };
  }

private:
  void run(net::conn_id id, const std::string& cmd) {
    e_.trace->emit(e_.host, "admin", "command '" + cmd + "'");
    if (cmd == "drain") {
      answer(id, "draining\n"); // first: an idle POP exits right away
      send(pop_, drain_atom::value);
    } else if (cmd == "status") {
      request(pop_, std::chrono::seconds(5), status_atom::value, report_atom::value)
        .then([this, id](const std::string& text) { answer(id, text); },
              [this, id](caf::error&) { answer(id, "error: no answer from the POP\n"); });
    } else {
      answer(id, "error: unknown command '" + cmd.substr(0, command_bytes_max)
                   + "' (drain, status)\n");
    }
  }

  void answer(net::conn_id id, const std::string& text) {
    lines_.erase(id);
    send(e_.io, net::write_req{id, {net::chunk::copy_of(text)}});
    send(e_.io, net::close_req{id});
  }

  // Actors hold each other's handles (owner <-> tunnel <-> session); a dead
  // actor lets go of them so that no cycle outlives it.
  void on_exit() override {
    e_ = {};
    pop_ = observer_ = nullptr;
  }

  env e_;
  std::string host_;
  uint16_t port_;
  caf::actor pop_;
  caf::actor observer_;
  std::map<net::conn_id, std::string> lines_;
};

} // namespace

caf::actor spawn_admin(caf::actor_system& sys, env e, std::string host,
                       uint16_t port, caf::actor pop, caf::actor observer) {
  return sys.spawn<admin_actor>(std::move(e), std::move(host), port, std::move(pop),
                                std::move(observer));
}

} // namespace drtp
