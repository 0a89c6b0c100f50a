#pragma once
// "HOST:PORT" addresses as the daemons' flags take them ("127.0.0.1:7443", "[::1]:7443",
// "ee-cloud.default.svc:7443").
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace ee::net {

struct HostPort {
  std::string host;  // without brackets
  std::string port;
};

// Throws std::invalid_argument naming the text when it is not HOST:PORT with a port in 1..65535 (0 too when
// allow_any_port, for listening on a free port).
HostPort parse_host_port(std::string_view text, bool allow_any_port = false);
// A numeric address to listen on; throws std::invalid_argument for a host name or a bad port.
boost::asio::ip::tcp::endpoint parse_endpoint(std::string_view text);
std::string to_string(const boost::asio::ip::tcp::endpoint& endpoint);

}  // namespace ee::net
