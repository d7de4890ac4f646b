#include "core/sha256_state.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace berth {
namespace {

std::string random_bytes(std::mt19937_64& rng, std::size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Saves and loads the state, as an upload moving to another instance would.
sha256_state round_trip(const sha256_state& state) {
  auto loaded = sha256_state::load(state.save());
  EXPECT_TRUE(loaded.has_value());
  return loaded ? *loaded : sha256_state();
}

TEST(Sha256State, NistVectors) {
  EXPECT_EQ(sha256_state().finish().str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  sha256_state abc;
  abc.update("abc");
  EXPECT_EQ(abc.finish().str(), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  sha256_state two_block;
  two_block.update("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
  EXPECT_EQ(two_block.finish().str(),
            "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  sha256_state million_a;
  const std::string thousand(1000, 'a');
  for (int i = 0; i < 1000; ++i) {
    million_a = round_trip(million_a);
    million_a.update(thousand);
  }
  EXPECT_EQ(million_a.finish().str(),
            "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256State, RandomSplitsAcrossSaveAndLoadMatchOneShot) {
  std::mt19937_64 rng(20261130);
  for (int round = 0; round < 200; ++round) {
    const auto data = random_bytes(rng, rng() % 5000);
    sha256_state state;
    std::size_t offset = 0;
    while (offset < data.size()) {
      const std::size_t piece = std::min<std::size_t>(rng() % 300, data.size() - offset);
      state.update(data.data() + offset, piece);
      offset += piece;
      EXPECT_EQ(state.size(), offset);
      state = round_trip(state);
      EXPECT_EQ(state.size(), offset);
    }
    ASSERT_EQ(state.finish(), digest_of(data)) << "round " << round << ", " << data.size() << " bytes";
  }
}

TEST(Sha256State, FinishLeavesTheStateToGoOn) {
  sha256_state state;
  state.update("hello ");
  EXPECT_EQ(state.finish(), digest_of("hello "));
  state.update("world");
  EXPECT_EQ(state.finish(), digest_of("hello world"));
}

TEST(Sha256State, LoadRefusesWhatItCannotResume) {
  sha256_state state;
  state.update("partial block");
  const std::string saved = state.save();
  ASSERT_TRUE(sha256_state::load(saved).has_value());

  EXPECT_FALSE(sha256_state::load("").has_value());
  EXPECT_FALSE(sha256_state::load(saved.substr(1)).has_value());
  EXPECT_FALSE(sha256_state::load(saved + "x").has_value());
  std::string other_version = saved;
  other_version[3] = 2;
  EXPECT_FALSE(sha256_state::load(other_version).has_value());
  std::string other_layout = saved;
  other_layout[4] = other_layout[4] == 'l' ? 'b' : 'l';
  EXPECT_FALSE(sha256_state::load(other_layout).has_value());
  // The partial-block length sits just before md_len at the end of the struct: corrupt it.
  std::string corrupt = saved;
  corrupt[corrupt.size() - 8] = static_cast<char>(200);
  EXPECT_FALSE(sha256_state::load(corrupt).has_value());
}

}  // namespace
}  // namespace berth
