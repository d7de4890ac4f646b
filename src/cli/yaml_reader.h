// Strict reading of a YAML file the user wrote (registry_file.h, preflight.h): every problem is
// collected with its line, so one run reports them all as "PATH:LINE: what is wrong".
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace berth::cli {

// The document in `text`; throws cli_error "PATH:LINE: ..." when it is not YAML.
YAML::Node load_yaml(const std::string& text, const std::string& path);

class yaml_reader {
 public:
  explicit yaml_reader(std::string path) : path_(std::move(path)) {}

  // The 1-based line of a node.
  static int line(const YAML::Node& n) { return n.Mark().line + 1; }

  void error(const YAML::Node& at, const std::string& message);
  // Throws cli_error with every error so far, one a line; returns when there is none.
  void throw_errors() const;

  // An error per key of `map` outside `known` ("unknown key `WHEREkey` (known: ...)").
  void known_keys(const YAML::Node& map, const std::vector<std::string>& known, const std::string& where);
  // False, with an error, when `n` is not a mapping.
  bool is_map(const YAML::Node& n, const std::string& where);
  // The node's text; nullopt, with an error, when it is not a scalar.
  std::optional<std::string> scalar(const YAML::Node& n, const std::string& where);
  std::optional<std::int64_t> positive(const YAML::Node& n, const std::string& where);
  // A whole number of any sign (the caller checks its range).
  std::optional<std::int64_t> whole_number(const YAML::Node& n, const std::string& where);
  std::optional<bool> boolean(const YAML::Node& n, const std::string& where);
  // A string or a list of strings.
  std::vector<std::string> strings(const YAML::Node& n, const std::string& where);

 private:
  std::string path_;
  std::vector<std::string> errors_;
};

}  // namespace berth::cli
