#include "control/watch_history.hpp"

#include <algorithm>

#include "net/seam/assert.hpp"

namespace drtp::control {

watch_history::watch_history(size_t lines_max) : lines_max_(lines_max) {
  DRTP_ASSERT(lines_max_ > 0, "a watch history holds at least one change");
}

void watch_history::start(uint64_t revision) {
  started_ = true;
  floor_ = revision;
  position_ = revision;
  lines_.clear();
}

void watch_history::stop() {
  started_ = false;
  lines_.clear();
}

void watch_history::append(uint64_t revision, std::string line) {
  DRTP_ASSERT(started_, "changes come from a started watch");
  DRTP_ASSERT(revision > position_, "a store watch delivers changes in revision order");
  lines_.push_back(entry{revision, std::move(line)});
  position_ = revision;
  while (lines_.size() > lines_max_) {
    floor_ = lines_.front().revision;
    lines_.pop_front();
  }
}

void watch_history::progress(uint64_t revision) {
  position_ = std::max(position_, revision);
}

bool watch_history::since(uint64_t after, size_t bytes_max, std::string& out) const {
  auto first = std::upper_bound(lines_.begin(), lines_.end(), after,
                                [](uint64_t a, const entry& e) { return a < e.revision; });
  for (auto i = first; i != lines_.end(); ++i) {
    if (out.size() + i->line.size() > bytes_max)
      return false;
    out += i->line;
  }
  return true;
}

} // namespace drtp::control
