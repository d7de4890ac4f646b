#include "app/config.h"

#include <fmt/core.h>
#include <yaml-cpp/yaml.h>

#include <set>
#include <stdexcept>

namespace berth::app {
namespace {

template <class T>
void read(const YAML::Node& node, const std::string& key, T& out, const std::string& path) {
  const auto value = node[key];
  if (!value) return;
  try {
    out = value.as<T>();
  } catch (const YAML::Exception&) {
    throw std::runtime_error(fmt::format("{}: `{}` has the wrong type", path, key));
  }
}

void reject_unknown(const YAML::Node& node, const std::set<std::string>& known, const std::string& where,
                    const std::string& path) {
  for (const auto& kv : node) {
    const auto key = kv.first.as<std::string>();
    if (!known.contains(key)) throw std::runtime_error(fmt::format("{}: unknown key `{}{}`", path, where, key));
  }
}

}  // namespace

config load_config(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
  }
  config c;
  if (root.IsNull()) return c;
  if (!root.IsMap()) throw std::runtime_error(fmt::format("{}: expected a mapping at the top level", path));
  reject_unknown(root, {"listen", "data", "log_level", "tls", "limits", "trust_forwarded_headers", "threads"}, "",
                 path);
  read(root, "listen", c.listen, path);
  read(root, "data", c.data, path);
  read(root, "log_level", c.log_level, path);
  read(root, "trust_forwarded_headers", c.trust_forwarded_headers, path);
  read(root, "threads", c.threads, path);
  if (const auto tls = root["tls"]) {
    reject_unknown(tls, {"certificate", "private_key"}, "tls.", path);
    http::tls_files files;
    read(tls, "certificate", files.certificate, path);
    read(tls, "private_key", files.private_key, path);
    if (files.certificate.empty() || files.private_key.empty())
      throw std::runtime_error(fmt::format("{}: tls needs both `certificate` and `private_key`", path));
    c.tls = std::move(files);
  }
  if (const auto limits = root["limits"]) {
    reject_unknown(limits, {"manifest_max_bytes", "max_page", "shutdown_grace_seconds", "upload_idle_hours"},
                   "limits.", path);
    read(limits, "manifest_max_bytes", c.manifest_max_bytes, path);
    read(limits, "max_page", c.max_page, path);
    read(limits, "shutdown_grace_seconds", c.shutdown_grace_seconds, path);
    read(limits, "upload_idle_hours", c.upload_idle_hours, path);
    if (c.upload_idle_hours < 1) throw std::runtime_error(fmt::format("{}: `upload_idle_hours` must be at least 1", path));
  }
  return c;
}

}  // namespace berth::app
