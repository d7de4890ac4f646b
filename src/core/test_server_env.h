// For integration tests: the servers that tests/servers/*.sh started. Each script writes KEY=VALUE
// lines into DIR/env; ctest passes that file's path in an environment variable (see
// tests/servers/CMakeLists.txt). A test skips, with the reason, when the variable is unset (the
// binary was run by hand) or when the script could not install its packages (SKIP=...); it fails
// when the file cannot be read.
#pragma once

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

namespace berth::test_util {

struct server_env {
  std::map<std::string, std::string> values;
  std::string skip;     // why the tests cannot run; "" when they can
  std::string failure;  // what went wrong reading the file; "" when nothing did

  const std::string& operator[](const std::string& key) const { return values.at(key); }
};

// Reads the env file named by the environment variable `variable`, written by `script`.
inline server_env read_server_env(const std::string& variable, const std::string& script) {
  server_env env;
  const char* path = std::getenv(variable.c_str());
  if (path == nullptr) {
    env.skip = variable + " is not set: run through ctest, or `tests/servers/" + script +
               " start DIR` and set " + variable + "=DIR/env";
    return env;
  }
  std::ifstream in(path);
  if (!in) {
    env.failure = std::string("cannot read ") + path + ": did tests/servers/" + script + " start fail?";
    return env;
  }
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) env.values[line.substr(0, eq)] = line.substr(eq + 1);
  }
  if (const auto it = env.values.find("SKIP"); it != env.values.end()) env.skip = "server unavailable: " + it->second;
  return env;
}

}  // namespace berth::test_util
