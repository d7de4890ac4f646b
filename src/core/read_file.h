// The whole content of a small file the configuration names (keys, secrets, JWKS), for start-up code.
#pragma once

#include <fmt/core.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace berth {

// Throws std::runtime_error "cannot read PATH" when the file cannot be opened.
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read {}", path));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace berth
