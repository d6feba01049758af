#pragma once
// The recent changes of one kind, as the registry's watchers are sent them:
// one store watch per kind feeds it (lines already rendered: JSON and '\n'),
// and every HTTP watch of that kind is served from it, so a thousand POPs
// watching cost the store one watch. It covers the revisions after floor()
// up to position(); a watch from before floor() cannot be served (410: the
// client lists again). At most lines_max changes are kept; the oldest goes
// first and raises the floor.
//
// Plain state, no actor.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

namespace drtp::control {

class watch_history {
public:
  explicit watch_history(size_t lines_max);

  /// The store watch started (again) after `revision`: the history is
  /// empty and covers everything after it.
  void start(uint64_t revision);
  /// The store watch ended (compacted past, backend lost): nothing is
  /// covered until start().
  void stop();
  bool started() const {
    return started_;
  }

  /// A change at `revision` (above position()).
  void append(uint64_t revision, std::string line);
  /// The store has nothing more up to `revision`.
  void progress(uint64_t revision);

  /// Everything up to here has been appended.
  uint64_t position() const {
    return position_;
  }
  /// Changes after this are all here.
  uint64_t floor() const {
    return floor_;
  }
  bool covers(uint64_t after) const {
    return started_ && after >= floor_;
  }

  /// The lines of changes after `after`, joined, into `out`. false when
  /// they are more than `bytes_max` (out is then incomplete).
  bool since(uint64_t after, size_t bytes_max, std::string& out) const;

  size_t size() const {
    return lines_.size();
  }

private:
  struct entry {
    uint64_t revision = 0;
    std::string line;
  };

  size_t lines_max_;
  bool started_ = false;
  uint64_t floor_ = 0;
  uint64_t position_ = 0;
  std::deque<entry> lines_;
};

} // namespace drtp::control
