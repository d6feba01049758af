#pragma once
// Where actors and io backends report what happened. The real binaries log
// to stderr; the simulator stamps each event with virtual time and hashes the
// whole trace, so two runs with one seed can be compared byte for byte.

#include <memory>
#include <string>

namespace drtp::net {

class tracer {
public:
  virtual ~tracer();
  /// `host` names the machine, `who` the actor or component ("tunnel#3").
  virtual void emit(const std::string& host, const std::string& who,
                    const std::string& what) = 0;
  /// Verbose events are dropped unless the tracer wants them.
  virtual bool verbose() const { return false; }
  /// Lines dropped by a rate limit so far (drtp_log_lines_dropped_total).
  virtual uint64_t lines_dropped_total() const { return 0; }
  /// An authorization decision, as component "audit". One about a peer that
  /// proved its secret (`authenticated`) is never dropped: there are only as
  /// many as there are logins. One about a peer that did not (an unknown
  /// principal, a wrong secret) is noise anyone can make as fast as they can
  /// connect; a tracer may count those instead of writing each, but they
  /// never use up the room of the authenticated ones.
  virtual void audit(const std::string& host, const std::string& what,
                     bool authenticated) {
    emit(host, "audit", what);
  }
  /// What a host holds for visitors, by kind ("session", "rsession",
  /// "splice"): +1 when one starts, -1 when it is gone. The simulator checks
  /// that nothing is left once every visitor is done; others ignore it.
  virtual void census(const std::string& host, const char* kind, int delta) {
    (void) host;
    (void) kind;
    (void) delta;
  }
};

/// `text` with every byte that could break a log line out of it written as
/// \xNN: control characters (a newline would start a forged line, ESC could
/// repaint the terminal), DEL, and the backslash itself, so the escaping is
/// unambiguous. Peers choose service names, principals and agent ids: every
/// line a tracer writes goes through this.
std::string escape_for_log(const std::string& text);

/// Discards everything (benchmarks, quiet tests).
std::shared_ptr<tracer> make_null_tracer();

} // namespace drtp::net
