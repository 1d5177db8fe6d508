#include "audit/tiles.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace signet::audit {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

template <typename R>
std::optional<ErrorCode> CodeOf(const R& result) {
  if (result.ok()) return std::nullopt;
  return result.error().code();
}

TileRef Hash(int level, uint64_t index, int width = kTileWidth) {
  return TileRef{false, level, index, width};
}
TileRef Bundle(uint64_t index, int width = kTileWidth) { return TileRef{true, 0, index, width}; }

std::vector<std::string> Paths(const std::vector<TileRef>& tiles) {
  std::vector<std::string> paths;
  paths.reserve(tiles.size());
  for (const TileRef& tile : tiles) paths.push_back(TilePath(tile));
  return paths;
}

Sha256Digest TestLeaf(uint64_t i) {
  Bytes entry(8);
  for (size_t b = 0; b < 8; ++b) entry[b] = static_cast<uint8_t>(i >> (8 * b));
  return HashLeaf(entry);
}

// --- Paths -------------------------------------------------------------------------------------

TEST(TilePathTest, EncodesIndexInGroupsOfThreeDigits) {
  EXPECT_EQ(TilePath(Hash(0, 0)), "tile/0/000");
  EXPECT_EQ(TilePath(Hash(0, 5)), "tile/0/005");
  EXPECT_EQ(TilePath(Hash(0, 999)), "tile/0/999");
  EXPECT_EQ(TilePath(Hash(0, 1000)), "tile/0/x001/000");
  EXPECT_EQ(TilePath(Hash(0, 1234067)), "tile/0/x001/x234/067");
  EXPECT_EQ(TilePath(Hash(0, 1000000)), "tile/0/x001/x000/000");
  EXPECT_EQ(TilePath(Hash(3, kMax)), "tile/3/x018/x446/x744/x073/x709/x551/615");
}

TEST(TilePathTest, EncodesPartialWidthAndEntryBundles) {
  EXPECT_EQ(TilePath(Hash(1, 1234, 7)), "tile/1/x001/234.p/7");
  EXPECT_EQ(TilePath(Hash(0, 3, 232)), "tile/0/003.p/232");
  EXPECT_EQ(TilePath(Bundle(0)), "tile/entries/000");
  EXPECT_EQ(TilePath(Bundle(1, 1)), "tile/entries/001.p/1");
  EXPECT_EQ(TilePath(Bundle(1000, 255)), "tile/entries/x001/000.p/255");
}

TEST(TilePathTest, ParsesWhatItEncodes) {
  std::mt19937_64 rng(7);
  std::vector<TileRef> tiles = {Hash(0, 0),
                                Hash(0, 0, 1),
                                Hash(7, 0, 255),
                                Hash(6, 0),
                                Hash(6, 254),
                                Hash(6, 255, 255),
                                Hash(1, 999, 3),
                                Hash(2, 1000),
                                Bundle(0, 1),
                                Bundle(1234067),
                                Bundle((uint64_t{1} << 56) - 2),
                                Bundle((uint64_t{1} << 56) - 1, 255),
                                Hash(0, (uint64_t{1} << 56) - 2),
                                Hash(0, (uint64_t{1} << 56) - 1, 255)};
  for (int i = 0; i < 2000; ++i) {
    const int level = static_cast<int>(rng() % (kMaxTileLevel + 1));
    int width = static_cast<int>(rng() % kTileWidth) + 1;
    if (level == kMaxTileLevel) width = std::min(width, kTileWidth - 1);  // 256 would end at 2^64
    const bool entries = level == 0 && rng() % 2 == 0;
    // An index small enough for the tile to exist at that level.
    const int bits = 56 - 8 * level;
    uint64_t index = bits == 0 ? 0 : rng() >> (64 - bits + 1);
    if (rng() % 4 == 0) index %= 1000000;
    tiles.push_back(TileRef{entries, level, index, width});
  }
  for (const TileRef& tile : tiles) {
    const std::string path = TilePath(tile);
    Result<TileRef> parsed = ParseTilePath(path);
    ASSERT_TRUE(parsed.ok()) << path << ": " << parsed.error().message();
    EXPECT_EQ(*parsed, tile) << path;
  }
}

TEST(TilePathTest, RefusesEveryMalformedPath) {
  const std::string too_long = "tile/0/" + std::string(100, '0');
  for (std::string_view path : {
           "", "tile", "tile/", "tile/0", "tile/0/",
           "/tile/0/000",             // leading slash
           "tiles/0/000",             // wrong prefix
           "Tile/0/000",              //
           "tile/00/000",             // level with a leading zero
           "tile/01/000",             //
           "tile/-1/000",             // signs
           "tile/+1/000",             //
           "tile/8/000",              // above kMaxTileLevel
           "tile/63/000",             // allowed by the spec, but no 64-bit tree has it
           "tile/1000/000",           //
           "tile/a/000",              //
           "tile/Entries/000",        // only "entries"
           "tile/data/000",           // the Go sumdb name
           "tile/entries/",           //
           "tile/0/00",               // groups of exactly three digits
           "tile/0/0000",             //
           "tile/0/1",                //
           "tile/0/0a0",              //
           "tile/0/x000/001",         // leading zero group
           "tile/0/x000/000",         //
           "tile/0/x001",             // an x group must be followed by another
           "tile/0/x001000",          //
           "tile/0/x001/",            //
           "tile/0/x1/000",           //
           "tile/0/xx001/000",        //
           "tile/0/001/002",          // a non-x group is the last
           "tile/0/000/",             // trailing bytes
           "tile/0/000 ",             //
           "tile/0/000x",             //
           "tile/0/000.p",            // partial width
           "tile/0/000.p/",           //
           "tile/0/000.p7",           //
           "tile/0/000.p/0",          //
           "tile/0/000.p/256",        //
           "tile/0/000.p/007",        //
           "tile/0/000.p/07",         //
           "tile/0/000.p/1x",         //
           "tile/0/000.p/7/",         //
           "tile/0/000.p/-1",         //
           "tile/0/000.p/1000",       //
           "tile/entries/000.p/0",    //
           "tile/entries/000.p/256",  //
           // Indices past 2^64 - 1 entries.
           "tile/0/x018/x446/x744/x073/x709/x551/616",  // 2^64: overflows
           "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
           "tile/0/x018/x446/x744/x073/x709/x551/615",   // fits 64 bits, not a tree
           "tile/0/x072/x057/x594/x037/x927/935",        // 2^56 - 1 full: ends at 2^64
           "tile/entries/x072/x057/x594/x037/x927/935",  //
           "tile/7/000",                                 // would end at 2^64
           "tile/7/001.p/1",                             //
           "tile/6/256.p/1",                             //
           "tile/6/255",                                 //
       }) {
    Result<TileRef> parsed = ParseTilePath(path);
    EXPECT_EQ(CodeOf(parsed), ErrorCode::kInvalidArgument) << "\"" << path << "\"";
  }
  EXPECT_EQ(CodeOf(ParseTilePath(too_long)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(ParseTilePath(std::string_view("tile/0/000\0", 11))),
            ErrorCode::kInvalidArgument);
}

TEST(TilePathTest, AcceptsTheLastTilesOfTheLargestTree) {
  // A tree of 2^64 - 1 entries: the right edge of every level is partial, width 255.
  const std::vector<TileRef> edge = NewTiles(TreeSize(kMax - 1), TreeSize(kMax));
  ASSERT_EQ(edge.size(), 1u);
  EXPECT_EQ(edge[0], Hash(0, (uint64_t{1} << 56) - 1, 255));
  for (int level = 0; level <= kMaxTileLevel; ++level) {
    const uint64_t count = kMax >> (8 * level);
    const TileRef last = Hash(level, count / 256, static_cast<int>(count % 256));
    Result<TileRef> parsed = ParseTilePath(TilePath(last));
    ASSERT_TRUE(parsed.ok()) << TilePath(last) << ": " << parsed.error().message();
    EXPECT_EQ(*parsed, last);
    if (count / 256 > 0) {
      const TileRef full = Hash(level, count / 256 - 1);
      EXPECT_TRUE(ParseTilePath(TilePath(full)).ok()) << TilePath(full);
    }
  }
  EXPECT_TRUE(ParseTilePath("tile/7/000.p/255").ok());
  EXPECT_TRUE(ParseTilePath("tile/entries/x072/x057/x594/x037/x927/935.p/255").ok());
}

// --- Which tiles exist ---------------------------------------------------------------------------

TEST(TilesForSizeTest, MatchesTheSpecExamples) {
  EXPECT_TRUE(TilesForSize(TreeSize(0)).empty());
  EXPECT_TRUE(TilesForSize(TreeSize(0), true).empty());
  EXPECT_EQ(Paths(TilesForSize(TreeSize(1))), std::vector<std::string>{"tile/0/000.p/1"});
  EXPECT_EQ(Paths(TilesForSize(TreeSize(1), true)),
            (std::vector<std::string>{"tile/0/000.p/1", "tile/entries/000.p/1"}));
  EXPECT_EQ(Paths(TilesForSize(TreeSize(255))), std::vector<std::string>{"tile/0/000.p/255"});
  EXPECT_EQ(Paths(TilesForSize(TreeSize(256))),
            (std::vector<std::string>{"tile/0/000", "tile/1/000.p/1"}));
  EXPECT_EQ(Paths(TilesForSize(TreeSize(256), true)),
            (std::vector<std::string>{"tile/0/000", "tile/1/000.p/1", "tile/entries/000"}));
  EXPECT_EQ(Paths(TilesForSize(TreeSize(257))),
            (std::vector<std::string>{"tile/0/000", "tile/0/001.p/1", "tile/1/000.p/1"}));
  EXPECT_EQ(Paths(TilesForSize(TreeSize(1000))),
            (std::vector<std::string>{"tile/0/000", "tile/0/001", "tile/0/002", "tile/0/003.p/232",
                                      "tile/1/000.p/3"}));
}

struct SizeCase {
  uint64_t size;
  size_t level0_full;
  int level0_partial;              // 0: none
  std::vector<std::string> upper;  // tiles of levels 1.. in order
};

TEST(TilesForSizeTest, ListsFullAndPartialTilesOfEveryLevel) {
  const std::vector<SizeCase> cases = {
      {255, 0, 255, {}},
      {256, 1, 0, {"tile/1/000.p/1"}},
      {257, 1, 1, {"tile/1/000.p/1"}},
      {65535, 255, 255, {"tile/1/000.p/255"}},
      {65536, 256, 0, {"tile/1/000", "tile/2/000.p/1"}},
      {65537, 256, 1, {"tile/1/000", "tile/2/000.p/1"}},
      {70000, 273, 112, {"tile/1/000", "tile/1/001.p/17", "tile/2/000.p/1"}},
  };
  for (const SizeCase& c : cases) {
    for (bool with_entries : {false, true}) {
      std::vector<std::string> expected;
      for (size_t i = 0; i < c.level0_full; ++i) expected.push_back(TilePath(Hash(0, i)));
      if (c.level0_partial != 0) {
        expected.push_back(TilePath(Hash(0, c.level0_full, c.level0_partial)));
      }
      expected.insert(expected.end(), c.upper.begin(), c.upper.end());
      if (with_entries) {
        for (size_t i = 0; i < c.level0_full; ++i) expected.push_back(TilePath(Bundle(i)));
        if (c.level0_partial != 0) {
          expected.push_back(TilePath(Bundle(c.level0_full, c.level0_partial)));
        }
      }
      EXPECT_EQ(Paths(TilesForSize(TreeSize(c.size), with_entries)), expected)
          << "size " << c.size << (with_entries ? " with entries" : "");
    }
  }
}

TEST(NewTilesTest, ListsOnlyTilesThatAppearOrGrow) {
  EXPECT_TRUE(NewTiles(TreeSize(5), TreeSize(5)).empty());
  EXPECT_TRUE(NewTiles(TreeSize(6), TreeSize(5)).empty());
  EXPECT_EQ(Paths(NewTiles(TreeSize(0), TreeSize(1))), std::vector<std::string>{"tile/0/000.p/1"});
  EXPECT_EQ(Paths(NewTiles(TreeSize(1), TreeSize(2), true)),
            (std::vector<std::string>{"tile/0/000.p/2", "tile/entries/000.p/2"}));
  EXPECT_EQ(Paths(NewTiles(TreeSize(255), TreeSize(256))),
            (std::vector<std::string>{"tile/0/000", "tile/1/000.p/1"}));
  EXPECT_EQ(Paths(NewTiles(TreeSize(256), TreeSize(257))),
            std::vector<std::string>{"tile/0/001.p/1"});
  EXPECT_EQ(Paths(NewTiles(TreeSize(255), TreeSize(257))),
            (std::vector<std::string>{"tile/0/000", "tile/0/001.p/1", "tile/1/000.p/1"}));
  EXPECT_EQ(Paths(NewTiles(TreeSize(65535), TreeSize(65536))),
            (std::vector<std::string>{"tile/0/255", "tile/1/000", "tile/2/000.p/1"}));
  EXPECT_EQ(Paths(NewTiles(TreeSize(65536), TreeSize(65537))),
            std::vector<std::string>{"tile/0/256.p/1"});
  EXPECT_EQ(Paths(NewTiles(TreeSize(1000), TreeSize(70000))).size(), (273u - 3u) + 1u + 2u + 1u);
}

TEST(NewTilesTest, HandlesHugeTrees) {
  const uint64_t t40 = uint64_t{1} << 40;
  EXPECT_EQ(Paths(NewTiles(TreeSize(t40), TreeSize(t40 + 3))),
            std::vector<std::string>{TilePath(Hash(0, uint64_t{1} << 32, 3))});
  EXPECT_EQ(
      NewTiles(TreeSize(t40 - 1), TreeSize(t40 + 3)),
      (std::vector<TileRef>{Hash(0, (uint64_t{1} << 32) - 1), Hash(0, uint64_t{1} << 32, 3),
                            Hash(1, (uint64_t{1} << 24) - 1), Hash(2, (uint64_t{1} << 16) - 1),
                            Hash(3, 255), Hash(4, 0), Hash(5, 0, 1)}));
  EXPECT_EQ(NewTiles(TreeSize(t40 + 2), TreeSize(t40 + 3), true),
            (std::vector<TileRef>{Hash(0, uint64_t{1} << 32, 3), Bundle(uint64_t{1} << 32, 3)}));
  // The largest tree: every level's right edge.
  const std::vector<TileRef> all = NewTiles(TreeSize(kMax - 255), TreeSize(kMax));
  ASSERT_EQ(all.size(), 1u);
  const std::vector<TileRef> top = NewTiles(TreeSize((kMax >> 8) << 8), TreeSize(kMax));
  ASSERT_EQ(top.size(), 1u);
  // Crossing 2^63: one tile completes on each of levels 0..6 and the top level grows.
  const uint64_t t63 = uint64_t{1} << 63;
  const std::vector<TileRef> edge = NewTiles(TreeSize(t63 - 1), TreeSize(t63));
  EXPECT_EQ(edge, (std::vector<TileRef>{
                      Hash(0, (uint64_t{1} << 55) - 1), Hash(1, (uint64_t{1} << 47) - 1),
                      Hash(2, (uint64_t{1} << 39) - 1), Hash(3, (uint64_t{1} << 31) - 1),
                      Hash(4, (uint64_t{1} << 23) - 1), Hash(5, (uint64_t{1} << 15) - 1),
                      Hash(6, 127), Hash(7, 0, 128)}));
  for (const TileRef& tile : edge)
    EXPECT_TRUE(ParseTilePath(TilePath(tile)).ok()) << TilePath(tile);
}

TEST(NewTilesTest, AgreesWithTilesForSizeForEveryStep) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 300; ++round) {
    const uint64_t a = rng() % 70000;
    const uint64_t b = a + rng() % (round % 3 == 0 ? 70000 : 600);
    std::set<std::string> before;
    for (const std::string& p : Paths(TilesForSize(TreeSize(a), true))) before.insert(p);
    std::set<std::string> after;
    for (const std::string& p : Paths(TilesForSize(TreeSize(b), true))) after.insert(p);
    std::set<std::string> expected;
    std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                        std::inserter(expected, expected.end()));
    const std::vector<std::string> added = Paths(NewTiles(TreeSize(a), TreeSize(b), true));
    EXPECT_EQ(std::set<std::string>(added.begin(), added.end()), expected) << a << " -> " << b;
    EXPECT_EQ(added.size(), expected.size()) << "no duplicates, " << a << " -> " << b;
  }
}

// --- Node hashes from tiles ----------------------------------------------------------------------

// Tiles as an integrator writes them: the tree grows through a list of checkpoint sizes; at each,
// the tiles NewTiles names are filled from the nodes CompactRange::Append reported, and stored
// keeping the widest version (as Store::GetLogTile does). Fetches check that the tile was published
// at the requested width by some checkpoint.
class TileStore {
 public:
  void GrowTo(std::span<const Sha256Digest> leaves, uint64_t size) {
    const TreeSize old_size = range_.size();
    for (uint64_t i = old_size.value(); i < size; ++i) {
      ASSERT_TRUE(range_
                      .Append(leaves[i],
                              [this](NodeId node, const Sha256Digest& hash) {
                                if (node.level % kTileHeight != 0) return;
                                auto& level = nodes_[node.level / kTileHeight];
                                ASSERT_EQ(level.size(), node.index);
                                level.push_back(hash);
                              })
                      .ok());
    }
    for (const TileRef& tile : NewTiles(old_size, TreeSize(size))) {
      const auto& level = nodes_[static_cast<uint32_t>(tile.level)];
      Bytes bytes;
      for (int i = 0; i < tile.width; ++i) {
        const Sha256Digest& hash = level.at(tile.index * kTileWidth + static_cast<uint64_t>(i));
        bytes.insert(bytes.end(), hash.begin(), hash.end());
      }
      tiles_[{tile.level, tile.index}] = bytes;
      published_.insert({tile.level, tile.index, tile.width});
    }
  }

  TileFetchFn Fetch() {
    return [this](const TileRef& tile) -> Result<Bytes> {
      ++fetches_;
      if (tile.entries) return InvalidArgument("asked for an entry bundle");
      if (!published_.contains({tile.level, tile.index, tile.width})) {
        return NotFound("tile " + TilePath(tile) + " was never published");
      }
      const Bytes& bytes = tiles_.at({tile.level, tile.index});
      return Bytes(bytes.begin(), bytes.begin() + std::ptrdiff_t{32} * tile.width);
    };
  }

  const CompactRange& range() const { return range_; }
  size_t fetches() const { return fetches_; }

 private:
  CompactRange range_;
  std::map<uint32_t, std::vector<Sha256Digest>> nodes_;
  std::map<std::pair<int, uint64_t>, Bytes> tiles_;
  std::set<std::tuple<int, uint64_t, int>> published_;
  size_t fetches_ = 0;
};

TEST(TileNodeHashTest, ReproducesRootsAndProofsComputedFromLeaves) {
  constexpr uint64_t kLeaves = 70001;
  std::vector<Sha256Digest> leaves;
  for (uint64_t i = 0; i < kLeaves; ++i) leaves.push_back(TestLeaf(i));
  std::vector<uint64_t> sizes = {1,   2,   3,    7,    8,     9,     255,   256,   257,  300,
                                 511, 512, 1000, 4096, 65535, 65536, 65537, 70000, 70001};
  TileStore store;
  std::vector<Sha256Digest> roots;
  std::mt19937_64 rng(3);
  for (size_t k = 0; k < sizes.size(); ++k) {
    const uint64_t size = sizes[k];
    store.GrowTo(leaves, size);
    const std::span<const Sha256Digest> tree(leaves.data(), size);
    const Sha256Digest root = RootFromLeafHashes(tree);
    roots.push_back(root);
    ASSERT_EQ(store.range().Root(), root);
    const NodeHashFn nodes = TileNodeHashFn(TreeSize(size), store.Fetch());

    Result<Sha256Digest> from_tiles = RootHash(TreeSize(size), nodes);
    ASSERT_TRUE(from_tiles.ok()) << size << ": " << from_tiles.error().message();
    EXPECT_EQ(*from_tiles, root) << size;
    Result<CompactRange> range = CompactRange::FromNodes(TreeSize(size), nodes);
    ASSERT_TRUE(range.ok()) << range.error().message();
    EXPECT_EQ(*range, store.range()) << size;

    // Inclusion: the edges, the middle and random leaves. Compared with proofs from leaves for
    // the smaller trees (O(size) each), verified against the root for all.
    std::vector<uint64_t> indices = {0, size - 1, size / 2, rng() % size, rng() % size};
    for (uint64_t index : indices) {
      Result<std::vector<Sha256Digest>> proof =
          InclusionProof(LeafIndex(index), TreeSize(size), nodes);
      ASSERT_TRUE(proof.ok()) << index << "/" << size << ": " << proof.error().message();
      EXPECT_TRUE(
          VerifyInclusion(leaves[index], LeafIndex(index), TreeSize(size), *proof, root).ok())
          << index << "/" << size;
      if (size <= 5000) {
        EXPECT_EQ(*proof, *InclusionProofFromLeaves(LeafIndex(index), tree))
            << index << "/" << size;
      }
    }
    // Consistency from every earlier checkpoint.
    for (size_t j = 0; j < k; ++j) {
      Result<std::vector<Sha256Digest>> proof =
          ConsistencyProof(TreeSize(sizes[j]), TreeSize(size), nodes);
      ASSERT_TRUE(proof.ok()) << sizes[j] << " -> " << size << ": " << proof.error().message();
      EXPECT_TRUE(
          VerifyConsistency(TreeSize(sizes[j]), TreeSize(size), *proof, roots[j], root).ok())
          << sizes[j] << " -> " << size;
      if (size <= 5000) {
        EXPECT_EQ(*proof, *ConsistencyProofFromLeaves(TreeSize(sizes[j]), tree))
            << sizes[j] << " -> " << size;
      }
    }
  }
}

TEST(TileNodeHashTest, WorksOnHugeUniformTrees) {
  // All leaves equal: each level's nodes are one hash, so every tile is that hash repeated and a
  // tree of 2^40 + 3 entries can be served without storing it.
  std::array<Sha256Digest, 64> level_hash{};
  level_hash[0] = TestLeaf(42);
  for (size_t l = 1; l < 64; ++l)
    level_hash[l] = HashChildren(level_hash[l - 1], level_hash[l - 1]);
  for (uint64_t size : {(uint64_t{1} << 40) + 3, (uint64_t{1} << 40), kMax, kMax - 256,
                        (uint64_t{1} << 63) + 12345}) {
    size_t fetches = 0;
    TileFetchFn fetch = [size, &level_hash, &fetches](const TileRef& tile) -> Result<Bytes> {
      ++fetches;
      // The width this tile has at `size`.
      const uint64_t count = size >> (8 * tile.level);
      const int width = tile.index < count / 256 ? 256 : static_cast<int>(count % 256);
      EXPECT_EQ(tile.width, width) << TilePath(tile);
      EXPECT_TRUE(ParseTilePath(TilePath(tile)).ok()) << TilePath(tile);
      Bytes bytes;
      for (int i = 0; i < tile.width; ++i) {
        const Sha256Digest& h = level_hash[size_t{8} * static_cast<size_t>(tile.level)];
        bytes.insert(bytes.end(), h.begin(), h.end());
      }
      return bytes;
    };
    const NodeHashFn nodes = TileNodeHashFn(TreeSize(size), fetch);
    std::vector<Sha256Digest> compact;
    for (const NodeId& node : CompactRange::Nodes(TreeSize(size))) {
      compact.push_back(level_hash[node.level]);
    }
    const Sha256Digest root = CompactRange::FromHashes(TreeSize(size), compact)->Root();
    Result<Sha256Digest> from_tiles = RootHash(TreeSize(size), nodes);
    ASSERT_TRUE(from_tiles.ok()) << from_tiles.error().message();
    EXPECT_EQ(*from_tiles, root) << size;
    for (uint64_t index : {uint64_t{0}, size - 1, size - 2, size / 3}) {
      Result<std::vector<Sha256Digest>> proof =
          InclusionProof(LeafIndex(index), TreeSize(size), nodes);
      ASSERT_TRUE(proof.ok()) << proof.error().message();
      EXPECT_TRUE(
          VerifyInclusion(level_hash[0], LeafIndex(index), TreeSize(size), *proof, root).ok())
          << index << "/" << size;
    }
    for (uint64_t old_size : {uint64_t{1}, size / 2, size - 1}) {
      Result<std::vector<Sha256Digest>> proof =
          ConsistencyProof(TreeSize(old_size), TreeSize(size), nodes);
      ASSERT_TRUE(proof.ok()) << proof.error().message();
      std::vector<Sha256Digest> old_compact;
      for (const NodeId& node : CompactRange::Nodes(TreeSize(old_size))) {
        old_compact.push_back(level_hash[node.level]);
      }
      const Sha256Digest old_root =
          CompactRange::FromHashes(TreeSize(old_size), old_compact)->Root();
      EXPECT_TRUE(
          VerifyConsistency(TreeSize(old_size), TreeSize(size), *proof, old_root, root).ok())
          << old_size << " -> " << size;
    }
    EXPECT_GT(fetches, 0u);
  }
}

TEST(TileNodeHashTest, RefusesTilesOfTheWrongLength) {
  for (size_t length : {0, 31, 32 * 3 - 1, 32 * 3 + 32, 32 * 256}) {
    const NodeHashFn nodes = TileNodeHashFn(TreeSize(3), [length](const TileRef& tile) {
      EXPECT_EQ(tile, Hash(0, 0, 3));
      return Result<Bytes>(Bytes(length, 1));
    });
    EXPECT_EQ(CodeOf(nodes(NodeId{0, 1})), ErrorCode::kDataLoss) << length;
  }
}

TEST(TileNodeHashTest, PassesFetchErrorsOnUnchanged) {
  const NodeHashFn nodes = TileNodeHashFn(
      TreeSize(300), [](const TileRef&) -> Result<Bytes> { return Unavailable("database busy"); });
  Result<Sha256Digest> node = nodes(NodeId{3, 2});
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(node.error().message(), "database busy");
}

TEST(TileNodeHashTest, RefusesNodesOutsideTheTree) {
  size_t fetches = 0;
  const NodeHashFn nodes = TileNodeHashFn(TreeSize(300), [&fetches](const TileRef& tile) {
    ++fetches;
    return Result<Bytes>(Bytes(32 * static_cast<size_t>(tile.width), 0));
  });
  EXPECT_TRUE(nodes(NodeId{0, 299}).ok());
  EXPECT_TRUE(nodes(NodeId{8, 0}).ok());
  EXPECT_TRUE(nodes(NodeId{5, 8}).ok());  // leaves 256..287
  EXPECT_EQ(fetches, 3u);
  for (NodeId node : {NodeId{0, 300}, NodeId{8, 1}, NodeId{9, 0}, NodeId{5, 9}, NodeId{64, 0},
                      NodeId{63, 0}, NodeId{0, kMax}}) {
    EXPECT_EQ(CodeOf(nodes(node)), ErrorCode::kInvalidArgument) << node.level << "/" << node.index;
  }
  EXPECT_EQ(fetches, 3u);
}

// --- Entry bundles -------------------------------------------------------------------------------

TEST(EntryBundleTest, RoundTrips) {
  const std::vector<std::vector<std::string>> cases = {
      {""},
      {"a"},
      {"{\"index\":0}", "", "xyz"},
      {std::string(65535, 'q'), "end"},
      std::vector<std::string>(256, "entry"),
  };
  for (const auto& entries : cases) {
    Result<Bytes> bundle = EncodeEntryBundle(entries);
    ASSERT_TRUE(bundle.ok()) << bundle.error().message();
    size_t expected_size = 0;
    for (const std::string& e : entries) expected_size += 2 + e.size();
    EXPECT_EQ(bundle->size(), expected_size);
    Result<std::vector<std::string>> decoded = DecodeEntryBundle(*bundle);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message();
    EXPECT_EQ(*decoded, entries);
    Result<std::vector<std::string>> counted =
        DecodeEntryBundle(*bundle, static_cast<int>(entries.size()));
    ASSERT_TRUE(counted.ok()) << counted.error().message();
  }
}

TEST(EntryBundleTest, EncodesLengthsBigEndian) {
  Result<Bytes> bundle = EncodeEntryBundle(std::vector<std::string>{"ab", std::string(258, 'z')});
  ASSERT_TRUE(bundle.ok());
  EXPECT_EQ((*bundle)[0], 0x00);
  EXPECT_EQ((*bundle)[1], 0x02);
  EXPECT_EQ((*bundle)[2], 'a');
  EXPECT_EQ((*bundle)[4], 0x01);
  EXPECT_EQ((*bundle)[5], 0x02);
}

TEST(EntryBundleTest, EncodeRefusesWhatABundleCannotHold) {
  EXPECT_EQ(CodeOf(EncodeEntryBundle({})), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(EncodeEntryBundle(std::vector<std::string>(257, "x"))),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(EncodeEntryBundle(std::vector<std::string>{"ok", std::string(65536, 'x')})),
            ErrorCode::kInvalidArgument);
}

TEST(EntryBundleTest, DecodeRefusesMalformedBundles) {
  const Bytes two = *EncodeEntryBundle(std::vector<std::string>{"abc", "de"});
  const std::vector<std::pair<std::string, Bytes>> cases = {
      {"empty", {}},
      {"half a length", {0x00}},
      {"truncated entry", {0x00, 0x03, 'a', 'b'}},
      {"length only", {0x00, 0x01}},
      {"trailing length byte", Bytes{0x00, 0x01, 'a', 0x00}},
      {"cut second entry", Bytes(two.begin(), two.end() - 1)},
      {"huge length", {0xff, 0xff, 'a'}},
  };
  for (const auto& [name, bytes] : cases) {
    EXPECT_EQ(CodeOf(DecodeEntryBundle(bytes)), ErrorCode::kInvalidArgument) << name;
  }
  Bytes too_many = *EncodeEntryBundle(std::vector<std::string>(256, "e"));
  too_many.insert(too_many.end(), {0x00, 0x00});
  EXPECT_EQ(CodeOf(DecodeEntryBundle(too_many)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(DecodeEntryBundle(two, 1)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(DecodeEntryBundle(two, 3)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(DecodeEntryBundle(two, -1)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(DecodeEntryBundle(two, 257)), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(DecodeEntryBundle(two, 2).ok());
  // The error names the offset where the bundle broke.
  Result<std::vector<std::string>> cut = DecodeEntryBundle(Bytes(two.begin(), two.end() - 1));
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.error().message().find("offset 5"), std::string::npos) << cut.error().message();
}

TEST(EntryBundleTest, LeafHashesOfABundleMatchTheLevelZeroTile) {
  // Entry i of bundle N is leaf 256 N + i: its leaf hash is hash i of tile/0/N.
  std::vector<std::string> entries;
  std::vector<Sha256Digest> leaves;
  for (int i = 0; i < 300; ++i) {
    entries.push_back("{\"index\":" + std::to_string(i) + "}");
    leaves.push_back(HashLeaf(AsBytes(entries.back())));
  }
  TileStore store;
  store.GrowTo(leaves, 300);
  Result<Bytes> bundle = EncodeEntryBundle(std::span(entries).subspan(256));
  ASSERT_TRUE(bundle.ok());
  Result<std::vector<std::string>> decoded = DecodeEntryBundle(*bundle, 44);
  ASSERT_TRUE(decoded.ok());
  Result<Bytes> tile = store.Fetch()(Hash(0, 1, 44));
  ASSERT_TRUE(tile.ok()) << tile.error().message();
  for (size_t i = 0; i < decoded->size(); ++i) {
    const Sha256Digest leaf = HashLeaf(AsBytes((*decoded)[i]));
    EXPECT_TRUE(std::equal(leaf.begin(), leaf.end(), tile->begin() + 32 * i)) << i;
  }
}

}  // namespace
}  // namespace signet::audit
