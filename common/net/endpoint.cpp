#include "common/net/endpoint.hpp"

#include <charconv>
#include <stdexcept>

namespace ee::net {

HostPort parse_host_port(std::string_view text, bool allow_any_port) {
  const auto bad = [&](const char* why) {
    return std::invalid_argument("'" + std::string(text) + "' is not HOST:PORT: " + why);
  };
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) throw bad("no host or no port");
  std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.back() != ']') throw bad("unclosed [");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    throw bad("an IPv6 address needs brackets, e.g. [::1]:7443");
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (host.empty() || port.empty() || ec != std::errc() || end != port.data() + port.size() ||
      value > 65535 || (value == 0 && !allow_any_port))
    throw bad("the port must be a number in 1..65535");
  return {std::string(host), std::string(port)};
}

boost::asio::ip::tcp::endpoint parse_endpoint(std::string_view text) {
  const HostPort hp = parse_host_port(text, true);
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(hp.host, ec);
  if (ec)
    throw std::invalid_argument("'" + std::string(text) + "': listen on a numeric address, not " + hp.host);
  return {address, static_cast<uint16_t>(std::stoi(hp.port))};
}

std::string to_string(const boost::asio::ip::tcp::endpoint& endpoint) {
  const std::string host = endpoint.address().to_string();
  return (endpoint.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(endpoint.port());
}

}  // namespace ee::net
