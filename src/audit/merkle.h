// audit/merkle: the Merkle-tree math of RFC 9162 §2.1 (the same as RFC 6962 §2.1) that signet's
// audit log is built on: leaf and node hashing, the root of a tree of any size, a compact range
// that an integrator keeps in memory to append in O(log n), and generation and verification of
// inclusion and consistency proofs.
//
// Everything here is a pure function of its arguments (plus, for generation, the node-hash
// callback it is given). No function does I/O or keeps state between calls; all may be called
// from any number of threads at once. A CompactRange is a plain value: not synchronised, safe to
// move or copy between threads.
//
// Tree vocabulary. D[a:b] are the entries a..b-1 and MTH(D[a:b]) their Merkle tree hash. A
// *perfect node* (level l, index j), NodeId{l, j}, is the root of the perfect subtree over
// D[j·2^l : (j+1)·2^l]; it exists once the tree holds (j+1)·2^l entries and never changes. Level 0
// nodes are leaf hashes. Every root is a right fold of the perfect nodes that cover [0, n), so any
// store that keeps perfect nodes (tiles, C2SP tlog-tiles) can back proof generation through a
// NodeHashFn.
//
// Errors. Verification distinguishes two outcomes, so callers can tell a broken request from a
// tampered log:
//   - InvalidArgument: the inputs are malformed whatever the log holds — a leaf index not below the
//     tree size, size1 > size2, a consistency proof from size 0, a proof with the wrong number of
//     hashes for its sizes (the exact length is a function of index and sizes), a non-empty proof
//     for equal sizes, or a byte string that is not exactly 32 bytes where a hash is expected.
//   - DataLoss: the inputs are well-formed but do not authenticate — the hashes reproduced from the
//     proof differ from the root(s) given, or equal sizes carry different roots. Either the proof,
//     the root or the log was corrupted or tampered with; never retry, alert.
// The message of each error names the sizes, the index and which root failed.
//
// Limits: sizes and indices are uint64 (a tree holds at most 2^64 − 1 entries); proofs longer than
// kMaxProofHashes (inclusion) or kMaxProofHashes + 1 (consistency) are refused before any hashing.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"

namespace signet::audit {

inline constexpr size_t kSha256DigestSize = 32;

// A SHA-256 output: a leaf hash, a node hash or a root. Always exactly 32 bytes, so every "hash
// must be 32 bytes" check of RFC 9162 happens once, where bytes become a Sha256Digest.
using Sha256Digest = std::array<uint8_t, kSha256DigestSize>;

// A 64-bit quantity that cannot be mixed up with another of a different kind (LeafIndex vs
// TreeSize). Explicit construction, value() to read, ordered comparisons within one kind only.
template <typename Tag>
class StrongUint64 {
 public:
  constexpr StrongUint64() = default;
  constexpr explicit StrongUint64(uint64_t value) : value_(value) {}
  constexpr uint64_t value() const { return value_; }
  friend constexpr auto operator<=>(const StrongUint64&, const StrongUint64&) = default;

 private:
  uint64_t value_ = 0;
};

// The position of an entry in the log, starting at 0.
using LeafIndex = StrongUint64<struct LeafIndexTag>;
// The number of entries in a tree (one more than the index of its last entry).
using TreeSize = StrongUint64<struct TreeSizeTag>;

// A perfect node: level 0..63, covering leaves [index << level, (index + 1) << level).
struct NodeId {
  uint32_t level = 0;
  uint64_t index = 0;
  friend constexpr bool operator==(const NodeId&, const NodeId&) = default;
};

// The longest possible inclusion proof (a tree of 2^64 − 1 entries has depth 64).
inline constexpr size_t kMaxProofHashes = 64;

// Returns the hash of the perfect node `node` of the tree being proved, or an error (NotFound,
// Unavailable, DataLoss, ...) that proof generation returns unchanged. Called only for nodes that
// lie entirely inside the requested tree size, on the calling thread, O(log n) times per proof.
using NodeHashFn = std::function<Result<Sha256Digest>(NodeId node)>;

// --- Hashes (RFC 9162 §2.1.1) -----------------------------------------------------------------

// Exactly 32 bytes → Sha256Digest; anything else → InvalidArgument naming `what` and the length.
Result<Sha256Digest> ToSha256Digest(ByteView bytes, std::string_view what = "hash");

// Splits a concatenation of 32-byte hashes (a tile, a binary proof) into digests. InvalidArgument
// if the length is not a multiple of 32 or there are more than `max_count` hashes.
Result<std::vector<Sha256Digest>> SplitDigests(ByteView concatenated, size_t max_count);

// MTH({}) = SHA-256 of the empty string, e3b0c442…b855.
Sha256Digest EmptyRoot();

// MTH({entry}) = SHA-256(0x00 || entry): the leaf hash of one entry's exact bytes.
Sha256Digest HashLeaf(ByteView entry);

// SHA-256(0x01 || left || right): the hash of an interior node.
Sha256Digest HashChildren(const Sha256Digest& left, const Sha256Digest& right);

// MTH of the entries whose leaf hashes are given, by the k-split of §2.1.1 (EmptyRoot() for
// none). O(n) hashing, O(log n) memory.
Sha256Digest RootFromLeafHashes(std::span<const Sha256Digest> leaf_hashes);

// --- Compact range ----------------------------------------------------------------------------

// The state an integrator keeps to extend a tree: the hashes of the perfect nodes that decompose
// [0, size), largest (leftmost) first — one per set bit of size, so at most 64. Appending a leaf
// hash costs O(log n) hashes; Root() folds the range in O(log n).
//
// Thread safety: a plain value; concurrent const calls are safe, mutation needs external locking.
class CompactRange {
 public:
  // Receives each perfect node the moment it becomes complete (the leaf itself at level 0, then
  // every parent the append completes, lowest level first), so the caller can store tiles. Must
  // not throw.
  using NodeSink = std::function<void(NodeId node, const Sha256Digest& hash)>;

  // The empty tree.
  CompactRange() = default;

  // The range of a tree of `size` entries from the hashes of Nodes(size), in that order. Fails
  // with InvalidArgument if the number of hashes is not the number of set bits of `size`.
  static Result<CompactRange> FromHashes(TreeSize size, std::vector<Sha256Digest> hashes);

  // Reads the hashes of Nodes(size) through `node_hash` (e.g. from stored tiles after a restart).
  // An error from `node_hash` is returned unchanged.
  static Result<CompactRange> FromNodes(TreeSize size, const NodeHashFn& node_hash);

  // The perfect nodes a compact range of `size` holds, largest first.
  static std::vector<NodeId> Nodes(TreeSize size);

  // Appends one leaf hash; reports each completed node to `on_node` if given. Fails with
  // ResourceExhausted (and changes nothing) if the tree already holds 2^64 − 1 entries.
  Status Append(const Sha256Digest& leaf_hash, const NodeSink& on_node = nullptr);

  TreeSize size() const { return TreeSize(size_); }
  // The hashes of Nodes(size()), largest first; valid until the next Append.
  std::span<const Sha256Digest> hashes() const { return hashes_; }
  // MTH(D[0:size]); EmptyRoot() for the empty tree.
  Sha256Digest Root() const;

  friend bool operator==(const CompactRange&, const CompactRange&) = default;

 private:
  uint64_t size_ = 0;
  std::vector<Sha256Digest> hashes_;
};

// --- Proof generation (RFC 9162 §2.1.3.1, §2.1.4.1) ----------------------------------------------

// The exact number of hashes in the inclusion proof of leaf `index` in a tree of `size` entries:
// bitlen(index XOR (size − 1)) + popcount(index >> that). 0 when index >= size (no proof exists).
size_t InclusionProofLength(LeafIndex index, TreeSize size);

// The exact number of hashes in the consistency proof from `size1` to `size2`; 0 unless
// 0 < size1 < size2 (for size1 == size2 the proof is empty; from size 0 none exists).
size_t ConsistencyProofLength(TreeSize size1, TreeSize size2);

// MTH(D[0:size]) from the perfect nodes of the tree (O(log n) reads, O(log n) hashes).
Result<Sha256Digest> RootHash(TreeSize size, const NodeHashFn& node_hash);

// The audit path PATH(index, D[0:size]) of §2.1.3.1, deepest sibling first, with
// InclusionProofLength(index, size) hashes. InvalidArgument if index >= size; errors of
// `node_hash` are returned unchanged. O(log n) node reads.
Result<std::vector<Sha256Digest>> InclusionProof(LeafIndex index, TreeSize size,
                                                 const NodeHashFn& node_hash);

// PROOF(size1, D[0:size2]) of §2.1.4.1, with ConsistencyProofLength(size1, size2) hashes. Empty for
// size1 == size2 (including 0). InvalidArgument if size1 > size2 or 0 == size1 < size2 (there is
// nothing to prove from the empty tree). Errors of `node_hash` are returned unchanged.
Result<std::vector<Sha256Digest>> ConsistencyProof(TreeSize size1, TreeSize size2,
                                                   const NodeHashFn& node_hash);

// The same over the complete list of leaf hashes of the tree (size = leaf_hashes.size()); for
// tests and small trees: each node is recomputed from leaves, O(n) hashes per proof.
Result<std::vector<Sha256Digest>> InclusionProofFromLeaves(
    LeafIndex index, std::span<const Sha256Digest> leaf_hashes);
Result<std::vector<Sha256Digest>> ConsistencyProofFromLeaves(
    TreeSize size1, std::span<const Sha256Digest> leaf_hashes);

// --- Proof verification (RFC 9162 §2.1.3.2, §2.1.4.2) -------------------------------------------

// Succeeds iff `proof` proves that `leaf_hash` is the leaf at `index` of the tree of `size`
// entries whose root is `root`. InvalidArgument if index >= size or the proof length is not
// InclusionProofLength(index, size); DataLoss if the reproduced root differs from `root`.
// Only pass a root and size taken from a verified checkpoint, never from the proof's sender.
Status VerifyInclusion(const Sha256Digest& leaf_hash, LeafIndex index, TreeSize size,
                       std::span<const Sha256Digest> proof, const Sha256Digest& root);

// Succeeds iff `proof` proves that the tree of `size1` entries with root `root1` is a prefix of
// the tree of `size2` entries with root `root2`. Policy for the cases §2.1.4.2 leaves to callers:
//   size1 > size2                → InvalidArgument (a log never shrinks; treat as rollback);
//   size1 == size2               → the proof must be empty (else InvalidArgument) and the roots
//                                  equal (else DataLoss: two roots for one size is equivocation);
//                                  for size 0 both must be EmptyRoot() (else DataLoss);
//   size1 == 0 < size2           → InvalidArgument: nothing to prove; a caller starting from the
//                                  empty tree skips the proof instead;
//   0 < size1 < size2            → the proof must have ConsistencyProofLength hashes (else
//                                  InvalidArgument) and reproduce both roots (else DataLoss).
Status VerifyConsistency(TreeSize size1, TreeSize size2, std::span<const Sha256Digest> proof,
                         const Sha256Digest& root1, const Sha256Digest& root2);

}  // namespace signet::audit
