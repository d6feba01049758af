#include "control/store.hpp"

#include "caf/atom.hpp"
#include "caf/error.hpp"
#include "caf/make_message.hpp"

namespace drtp::control {

namespace {

constexpr caf::atom_value store_category = caf::atom("store");

} // namespace

caf::error make_error(store_errc code) {
  return {static_cast<uint8_t>(code), store_category};
}

caf::error make_error(store_errc code, std::string what) {
  return {static_cast<uint8_t>(code), store_category, caf::make_message(std::move(what))};
}

const char* to_string(store_errc code) {
  switch (code) {
    case store_errc::unavailable:
      return "unavailable";
    case store_errc::too_large:
      return "too_large";
    case store_errc::invalid:
      return "invalid";
    case store_errc::full:
      return "full";
  }
  return "unknown";
}

std::optional<store_errc> store_error_code(const caf::error& e) {
  if (!e || e.category() != store_category)
    return std::nullopt;
  auto code = e.code();
  if (code < static_cast<uint8_t>(store_errc::unavailable)
      || code > static_cast<uint8_t>(store_errc::full))
    return std::nullopt;
  return static_cast<store_errc>(code);
}

std::string store_error_text(const caf::error& e) {
  auto code = store_error_code(e);
  if (!code)
    return caf::to_string(e);
  std::string out = to_string(*code);
  if (e.context().match_elements<std::string>())
    out += ": " + e.context().get_as<std::string>(0);
  return out;
}

} // namespace drtp::control
