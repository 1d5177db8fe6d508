#include "audit/merkle.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>

#include "audit/internal/crypto.h"

namespace signet::audit {
namespace {

constexpr uint8_t kLeafPrefix = 0x00;
constexpr uint8_t kNodePrefix = 0x01;

std::string Str(uint64_t v) { return std::to_string(v); }

// k of the k-split (RFC 9162 §2.1.1): the largest power of two strictly below n, for n >= 2.
uint64_t SplitPoint(uint64_t n) { return uint64_t{1} << (std::bit_width(n - 1) - 1); }

// x >> shift for shift in [0, 64]; a shift by 64 is undefined in C++ but means "nothing left" here.
uint64_t ShiftRight(uint64_t x, int shift) { return shift >= 64 ? 0 : x >> shift; }

// MTH(D[begin:end]) from perfect nodes. Every range the PATH and SUBPROOF recursions produce
// starts at a multiple of the largest power of two its length contains, so the range splits into
// aligned perfect nodes, one per set bit of its length, from the largest down; its hash is the
// right fold of theirs (which is exactly the k-split). Reads popcount(end - begin) nodes.
Result<Sha256Digest> RangeHash(uint64_t begin, uint64_t end, const NodeHashFn& node_hash) {
  const uint64_t length = end - begin;
  // An unaligned or empty range would mean a bug in the callers below, not bad input.
  if (begin >= end || (begin & ((uint64_t{1} << (std::bit_width(length) - 1)) - 1)) != 0) {
    std::abort();
  }
  std::array<Sha256Digest, 64> parts{};
  size_t count = 0;
  uint64_t position = begin;
  for (int level = 63; level >= 0; --level) {
    const uint64_t width = uint64_t{1} << level;
    if ((length & width) == 0) continue;
    SIGNET_ASSIGN_OR_RETURN(parts[count],
                            node_hash(NodeId{static_cast<uint32_t>(level), position >> level}));
    ++count;
    position += width;
  }
  Sha256Digest hash = parts[count - 1];
  for (size_t i = count - 1; i-- > 0;) hash = HashChildren(parts[i], hash);
  return hash;
}

// A NodeHashFn over a complete list of leaf hashes, recomputing each node from its leaves.
NodeHashFn LeafNodeHash(std::span<const Sha256Digest> leaves) {
  return [leaves](NodeId node) -> Result<Sha256Digest> {
    if (node.level >= 64 || node.index >= (uint64_t{leaves.size()} >> node.level)) {
      return InternalError("node (level " + Str(node.level) + ", index " + Str(node.index) +
                           ") lies outside a tree of " + Str(leaves.size()) + " leaves");
    }
    const uint64_t width = uint64_t{1} << node.level;
    return RootFromLeafHashes(leaves.subspan(node.index * width, width));
  };
}

std::string DescribeInclusion(uint64_t index, uint64_t size) {
  return "inclusion proof for leaf " + Str(index) + " in a tree of " + Str(size) + " entries";
}

std::string DescribeConsistency(uint64_t size1, uint64_t size2) {
  return "consistency proof from tree size " + Str(size1) + " to " + Str(size2);
}

}  // namespace

// --- Hashes -------------------------------------------------------------------------------------

Result<Sha256Digest> ToSha256Digest(ByteView bytes, std::string_view what) {
  if (bytes.size() != kSha256DigestSize) {
    return InvalidArgument(std::string(what) + " must be a 32-byte SHA-256 hash, got " +
                           Str(bytes.size()) + " bytes");
  }
  Sha256Digest digest;
  std::copy(bytes.begin(), bytes.end(), digest.begin());
  return digest;
}

Result<std::vector<Sha256Digest>> SplitDigests(ByteView concatenated, size_t max_count) {
  if (concatenated.size() % kSha256DigestSize != 0) {
    return InvalidArgument("a list of SHA-256 hashes must be a multiple of 32 bytes long, got " +
                           Str(concatenated.size()) + " bytes");
  }
  const size_t count = concatenated.size() / kSha256DigestSize;
  if (count > max_count) {
    return InvalidArgument("at most " + Str(max_count) + " hashes expected, got " + Str(count));
  }
  std::vector<Sha256Digest> digests(count);
  for (size_t i = 0; i < count; ++i) {
    auto part = concatenated.subspan(i * kSha256DigestSize, kSha256DigestSize);
    std::copy(part.begin(), part.end(), digests[i].begin());
  }
  return digests;
}

Sha256Digest EmptyRoot() { return internal::Sha256({}); }

Sha256Digest HashLeaf(ByteView entry) {
  const uint8_t prefix = kLeafPrefix;
  return internal::Sha256({ByteView(&prefix, 1), entry});
}

Sha256Digest HashChildren(const Sha256Digest& left, const Sha256Digest& right) {
  // One contiguous 65-byte buffer: a single update is measurably cheaper than three.
  std::array<uint8_t, 1 + 2 * kSha256DigestSize> buffer{};
  buffer[0] = kNodePrefix;
  std::copy(left.begin(), left.end(), buffer.begin() + 1);
  std::copy(right.begin(), right.end(), buffer.begin() + 1 + kSha256DigestSize);
  return internal::Sha256({buffer});
}

Sha256Digest RootFromLeafHashes(std::span<const Sha256Digest> leaf_hashes) {
  CompactRange range;
  for (const Sha256Digest& leaf : leaf_hashes) {
    // A span in memory cannot hold 2^64 − 1 elements, so Append cannot fail here.
    if (!range.Append(leaf).ok()) std::abort();
  }
  return range.Root();
}

// --- Compact range ------------------------------------------------------------------------------

Result<CompactRange> CompactRange::FromHashes(TreeSize size, std::vector<Sha256Digest> hashes) {
  const auto expected = static_cast<size_t>(std::popcount(size.value()));
  if (hashes.size() != expected) {
    return InvalidArgument("a compact range for tree size " + Str(size.value()) + " holds " +
                           Str(expected) + " hashes, got " + Str(hashes.size()));
  }
  CompactRange range;
  range.size_ = size.value();
  range.hashes_ = std::move(hashes);
  return range;
}

Result<CompactRange> CompactRange::FromNodes(TreeSize size, const NodeHashFn& node_hash) {
  std::vector<Sha256Digest> hashes;
  for (const NodeId& node : Nodes(size)) {
    SIGNET_ASSIGN_OR_RETURN(Sha256Digest hash, node_hash(node));
    hashes.push_back(hash);
  }
  return FromHashes(size, std::move(hashes));
}

std::vector<NodeId> CompactRange::Nodes(TreeSize size) {
  std::vector<NodeId> nodes;
  uint64_t position = 0;
  for (int level = 63; level >= 0; --level) {
    const uint64_t width = uint64_t{1} << level;
    if ((size.value() & width) == 0) continue;
    nodes.push_back(NodeId{static_cast<uint32_t>(level), position >> level});
    position += width;
  }
  return nodes;
}

Status CompactRange::Append(const Sha256Digest& leaf_hash, const NodeSink& on_node) {
  if (size_ == std::numeric_limits<uint64_t>::max()) {
    return ResourceExhausted("the tree already holds 2^64 - 1 entries; it cannot grow");
  }
  // The new leaf completes one node per trailing one bit of the old size: merge it with the
  // rightmost stored hash that many times (binary addition with carries).
  Sha256Digest hash = leaf_hash;
  NodeId node{0, size_};
  if (on_node) on_node(node, hash);
  for (uint64_t carry = size_; (carry & 1) != 0; carry >>= 1) {
    hash = HashChildren(hashes_.back(), hash);
    hashes_.pop_back();
    node = NodeId{node.level + 1, node.index >> 1};
    if (on_node) on_node(node, hash);
  }
  hashes_.push_back(hash);
  ++size_;
  return OkStatus();
}

Sha256Digest CompactRange::Root() const {
  if (hashes_.empty()) return EmptyRoot();
  Sha256Digest root = hashes_.back();
  for (size_t i = hashes_.size() - 1; i-- > 0;) root = HashChildren(hashes_[i], root);
  return root;
}

// --- Proof generation ---------------------------------------------------------------------------

size_t InclusionProofLength(LeafIndex index, TreeSize size) {
  const uint64_t m = index.value();
  const uint64_t n = size.value();
  if (m >= n) return 0;
  // Levels below `inner` are where the leaf's path and the right edge of the tree differ: one
  // sibling each. Above that the path runs along the right edge, where only the levels at which
  // the leaf is a right child have a (left) sibling.
  const auto inner = static_cast<int>(std::bit_width(m ^ (n - 1)));
  const int border = std::popcount(ShiftRight(m, inner));
  return static_cast<size_t>(inner) + static_cast<size_t>(border);
}

size_t ConsistencyProofLength(TreeSize size1, TreeSize size2) {
  const uint64_t m = size1.value();
  const uint64_t n = size2.value();
  if (m == 0 || m >= n) return 0;
  const int shared = std::countr_zero(m);
  const auto diverge = static_cast<int>(std::bit_width((m - 1) ^ (n - 1)));
  // diverge > shared for 0 < m < n: m − 1 and n − 1 differ above the trailing zeros of m.
  const int count = (diverge - shared) + std::popcount(ShiftRight(m - 1, diverge)) +
                    (std::has_single_bit(m) ? 0 : 1);
  return static_cast<size_t>(count);
}

Result<Sha256Digest> RootHash(TreeSize size, const NodeHashFn& node_hash) {
  if (size.value() == 0) return EmptyRoot();
  return RangeHash(0, size.value(), node_hash);
}

Result<std::vector<Sha256Digest>> InclusionProof(LeafIndex index, TreeSize size,
                                                 const NodeHashFn& node_hash) {
  if (index.value() >= size.value()) {
    return InvalidArgument("no " + DescribeInclusion(index.value(), size.value()) +
                           ": the index must be below the tree size");
  }
  // PATH(m, D[a:b]) unrolled from the root down; siblings are collected top-down and reversed,
  // since the proof lists the deepest sibling first.
  uint64_t m = index.value();
  uint64_t begin = 0;
  uint64_t end = size.value();
  std::vector<Sha256Digest> proof;
  while (end - begin > 1) {
    const uint64_t k = SplitPoint(end - begin);
    if (m < k) {
      SIGNET_ASSIGN_OR_RETURN(Sha256Digest sibling, RangeHash(begin + k, end, node_hash));
      proof.push_back(sibling);
      end = begin + k;
    } else {
      SIGNET_ASSIGN_OR_RETURN(Sha256Digest sibling, RangeHash(begin, begin + k, node_hash));
      proof.push_back(sibling);
      m -= k;
      begin += k;
    }
  }
  std::reverse(proof.begin(), proof.end());
  if (proof.size() != InclusionProofLength(index, size)) std::abort();
  return proof;
}

Result<std::vector<Sha256Digest>> ConsistencyProof(TreeSize size1, TreeSize size2,
                                                   const NodeHashFn& node_hash) {
  if (size1 > size2) {
    return InvalidArgument("no " + DescribeConsistency(size1.value(), size2.value()) +
                           ": a log never shrinks");
  }
  if (size1 == size2) return std::vector<Sha256Digest>{};
  if (size1.value() == 0) {
    return InvalidArgument("no " + DescribeConsistency(0, size2.value()) +
                           ": every tree extends the empty tree, there is nothing to prove");
  }
  // SUBPROOF(m, D[a:b], complete) unrolled from the root down, as in InclusionProof.
  uint64_t m = size1.value();
  uint64_t begin = 0;
  uint64_t end = size2.value();
  bool complete = true;  // The old tree is still a node of the new one (m is a power of two).
  std::vector<Sha256Digest> proof;
  while (true) {
    if (m == end - begin) {
      if (!complete) {
        SIGNET_ASSIGN_OR_RETURN(Sha256Digest old_subtree, RangeHash(begin, end, node_hash));
        proof.push_back(old_subtree);
      }
      break;
    }
    const uint64_t k = SplitPoint(end - begin);
    if (m <= k) {
      SIGNET_ASSIGN_OR_RETURN(Sha256Digest right, RangeHash(begin + k, end, node_hash));
      proof.push_back(right);
      end = begin + k;
    } else {
      SIGNET_ASSIGN_OR_RETURN(Sha256Digest left, RangeHash(begin, begin + k, node_hash));
      proof.push_back(left);
      m -= k;
      begin += k;
      complete = false;
    }
  }
  std::reverse(proof.begin(), proof.end());
  if (proof.size() != ConsistencyProofLength(size1, size2)) std::abort();
  return proof;
}

Result<std::vector<Sha256Digest>> InclusionProofFromLeaves(
    LeafIndex index, std::span<const Sha256Digest> leaf_hashes) {
  return InclusionProof(index, TreeSize(leaf_hashes.size()), LeafNodeHash(leaf_hashes));
}

Result<std::vector<Sha256Digest>> ConsistencyProofFromLeaves(
    TreeSize size1, std::span<const Sha256Digest> leaf_hashes) {
  return ConsistencyProof(size1, TreeSize(leaf_hashes.size()), LeafNodeHash(leaf_hashes));
}

// --- Proof verification -------------------------------------------------------------------------

Status VerifyInclusion(const Sha256Digest& leaf_hash, LeafIndex index, TreeSize size,
                       std::span<const Sha256Digest> proof, const Sha256Digest& root) {
  const uint64_t m = index.value();
  const uint64_t n = size.value();
  // Built only on failure: a log verifier calls this millions of times.
  auto what = [m, n] { return DescribeInclusion(m, n); };
  if (proof.size() > kMaxProofHashes) {
    return InvalidArgument(what() + " has " + Str(proof.size()) +
                           " hashes; no proof has more than " + Str(kMaxProofHashes));
  }
  if (m >= n) {
    return InvalidArgument(what() + " cannot exist: the index must be below the tree size");
  }
  const size_t expected = InclusionProofLength(index, size);
  if (proof.size() != expected) {
    return InvalidArgument(what() + " must have exactly " + Str(expected) + " hashes, got " +
                           Str(proof.size()));
  }
  // RFC 9162 §2.1.3.2. fn walks up from the leaf, sn from the last leaf (the right edge).
  uint64_t fn = m;
  uint64_t sn = n - 1;
  Sha256Digest r = leaf_hash;
  for (const Sha256Digest& p : proof) {
    if (sn == 0) return InvalidArgument(what() + " is too long");
    if ((fn & 1) == 1 || fn == sn) {
      r = HashChildren(p, r);
      // On the right edge, levels where the node has no right sibling are skipped.
      if ((fn & 1) == 0) {
        while (fn != 0 && (fn & 1) == 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = HashChildren(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return InvalidArgument(what() + " is too short");
  if (r != root) {
    return DataLoss(what() +
                    " does not lead to the expected root: the leaf is not at that index "
                    "in that tree, or the proof or the root was altered");
  }
  return OkStatus();
}

Status VerifyConsistency(TreeSize size1, TreeSize size2, std::span<const Sha256Digest> proof,
                         const Sha256Digest& root1, const Sha256Digest& root2) {
  const uint64_t m = size1.value();
  const uint64_t n = size2.value();
  auto what = [m, n] { return DescribeConsistency(m, n); };
  if (proof.size() > kMaxProofHashes + 1) {
    return InvalidArgument(what() + " has " + Str(proof.size()) +
                           " hashes; no proof has more than " + Str(kMaxProofHashes + 1));
  }
  if (m > n) {
    return InvalidArgument(what() +
                           " cannot exist: the new tree is smaller than the old one "
                           "(a rollback)");
  }
  if (m == n) {
    if (!proof.empty()) {
      return InvalidArgument(what() + " must be empty for equal sizes, got " + Str(proof.size()) +
                             " hashes");
    }
    if (root1 != root2) {
      return DataLoss("two different roots for tree size " + Str(m) +
                      ": the log presented inconsistent views (keep both as evidence)");
    }
    if (m == 0 && root1 != EmptyRoot()) {
      return DataLoss("the root of the empty tree must be SHA-256(\"\")");
    }
    return OkStatus();
  }
  if (m == 0) {
    return InvalidArgument(what() +
                           " proves nothing: every tree extends the empty one; skip the "
                           "proof when starting from size 0");
  }
  const size_t expected = ConsistencyProofLength(size1, size2);
  if (proof.size() != expected) {
    return InvalidArgument(what() + " must have exactly " + Str(expected) + " hashes, got " +
                           Str(proof.size()));
  }
  // RFC 9162 §2.1.4.2. If size1 is a power of two, the old root is itself a node of the new tree
  // and the proof leaves it out: start from root1 instead of the first proof hash.
  uint64_t fn = m - 1;
  uint64_t sn = n - 1;
  while ((fn & 1) == 1) {
    fn >>= 1;
    sn >>= 1;
  }
  size_t next = 0;
  Sha256Digest fr;
  if (std::has_single_bit(m)) {
    fr = root1;
  } else {
    fr = proof[0];
    next = 1;
  }
  Sha256Digest sr = fr;
  for (; next < proof.size(); ++next) {
    const Sha256Digest& c = proof[next];
    if (sn == 0) return InvalidArgument(what() + " is too long");
    if ((fn & 1) == 1 || fn == sn) {
      fr = HashChildren(c, fr);
      sr = HashChildren(c, sr);
      if ((fn & 1) == 0) {
        while (fn != 0 && (fn & 1) == 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      sr = HashChildren(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return InvalidArgument(what() + " is too short");
  if (fr != root1) {
    return DataLoss(what() + " does not reproduce the old root (size " + Str(m) +
                    "): the proof or the old root was altered");
  }
  if (sr != root2) {
    return DataLoss(what() + " does not reproduce the new root (size " + Str(n) +
                    "): the new tree does not extend the old one, or the proof or root was "
                    "altered");
  }
  return OkStatus();
}

}  // namespace signet::audit
