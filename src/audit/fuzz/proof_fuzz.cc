// Fuzzes Merkle proof verification and generation with arbitrary sizes, indices, hashes and
// proof lengths. Input layout: 8 bytes index/size1, 8 bytes size/size2 (little-endian), 32 bytes
// leaf hash/root1, 32 bytes root/root2, then proof hashes (a partial trailing hash is dropped);
// short inputs are zero-padded. Properties: nothing crashes or trips a sanitizer; a proof that
// verifies has exactly the length the formulas give; and proofs generated over a tree of any size
// (up to 2^64 − 1, all leaves equal so every node is one hash per level) verify against the roots
// generated from the same nodes.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "audit/merkle.h"

namespace {

using signet::Result;
using signet::audit::Sha256Digest;

uint64_t ReadUint64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// The perfect node of each level in a tree whose leaves are all `leaf`.
std::array<Sha256Digest, 64> UniformLevels(const Sha256Digest& leaf) {
  std::array<Sha256Digest, 64> levels;
  levels[0] = leaf;
  for (size_t i = 1; i < levels.size(); ++i) {
    levels[i] = signet::audit::HashChildren(levels[i - 1], levels[i - 1]);
  }
  return levels;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace signet::audit;  // NOLINT(google-build-using-namespace): fuzz driver only.
  constexpr size_t kHeader = 8 + 8 + 32 + 32;
  std::vector<uint8_t> input(data, data + size);
  if (input.size() < kHeader) input.resize(kHeader, 0);
  const uint64_t a = ReadUint64(input.data());
  const uint64_t b = ReadUint64(input.data() + 8);
  Sha256Digest first, second;
  std::memcpy(first.data(), input.data() + 16, 32);
  std::memcpy(second.data(), input.data() + 48, 32);
  const size_t count = std::min<size_t>((input.size() - kHeader) / 32, 80);
  std::vector<Sha256Digest> proof(count);
  for (size_t i = 0; i < count; ++i)
    std::memcpy(proof[i].data(), input.data() + kHeader + 32 * i, 32);

  if (VerifyInclusion(first, LeafIndex(a), TreeSize(b), proof, second).ok()) {
    if (proof.size() != InclusionProofLength(LeafIndex(a), TreeSize(b))) std::abort();
  }
  if (VerifyConsistency(TreeSize(a), TreeSize(b), proof, first, second).ok()) {
    if (a != b && proof.size() != ConsistencyProofLength(TreeSize(a), TreeSize(b))) std::abort();
  }

  // Generation round trip over a uniform tree of size b (at least 1).
  const std::array<Sha256Digest, 64> levels = UniformLevels(first);
  const NodeHashFn nodes = [&levels](NodeId node) -> Result<Sha256Digest> {
    return levels[node.level];
  };
  const uint64_t n = b == 0 ? 1 : b;
  const uint64_t m = a % n;
  auto root = RootHash(TreeSize(n), nodes);
  auto inclusion = InclusionProof(LeafIndex(m), TreeSize(n), nodes);
  if (!root.ok() || !inclusion.ok()) std::abort();
  if (!VerifyInclusion(first, LeafIndex(m), TreeSize(n), *inclusion, *root).ok()) std::abort();
  const uint64_t old_size = m + 1;
  auto old_root = RootHash(TreeSize(old_size), nodes);
  auto consistency = ConsistencyProof(TreeSize(old_size), TreeSize(n), nodes);
  if (!old_root.ok() || !consistency.ok()) std::abort();
  if (!VerifyConsistency(TreeSize(old_size), TreeSize(n), *consistency, *old_root, *root).ok()) {
    std::abort();
  }
  return 0;
}
