#pragma once
// `drtp status`: what a running drtp-pop, drtp serve or drtp connect holds,
// read from its --metrics endpoint (/debug/sessions) and printed as tables a
// person reads: its tunnels, then each live session with the POP carrying
// it, its age, bytes each way, resumes, resent bytes, stall, the round trip
// of this end's hop and of the other end's (told in band), and its path
// when it moved.

#include <string>

namespace drtp::cli {

/// The tables for one /debug/sessions document (JSON); throws
/// std::runtime_error for one that is not.
std::string render_status(const std::string& json, bool wide);

/// GET `target` from HOST:PORT over plain HTTP on a blocking socket, within
/// `timeout_ms` overall; the body, or std::runtime_error with one line.
/// Meant for the local endpoint: it reads at most body_bytes_max.
std::string http_get(const std::string& host_port, const std::string& target,
                     int timeout_ms);

constexpr size_t status_body_bytes_max = 16 * 1024 * 1024;

} // namespace drtp::cli
