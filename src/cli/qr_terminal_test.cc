#include "cli/qr_terminal.h"

#include <gtest/gtest.h>

#include <sstream>

namespace signet::cli {
namespace {

TEST(QrTerminalTest, DrawsASquareWithQuietZone) {
  auto qr =
      RenderQrForTerminal("otpauth://totp/signet:admin?secret=JBSWY3DPEHPK3PXP&issuer=signet");
  ASSERT_TRUE(qr.ok()) << qr.error().message();
  std::istringstream in(*qr);
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  ASSERT_FALSE(lines.empty());
  // Every line has the same number of cells (each cell is one 3-byte block or one space).
  auto cells = [](const std::string& l) {
    size_t n = 0;
    for (size_t i = 0; i < l.size(); ++n) i += (l[i] == ' ') ? 1 : 3;
    return n;
  };
  const size_t width = cells(lines[0]);
  for (const auto& l : lines) EXPECT_EQ(cells(l), width);
  // Size = modules + 8 (quiet zone), drawn two rows per line.
  EXPECT_EQ(lines.size(), (width + 1) / 2);
  EXPECT_EQ((width - 8 - 21) % 4, 0u) << width;  // a QR code is 21 + 4k modules wide
  // The quiet zone (light, drawn as ink) makes the first line all full blocks.
  std::string full;
  for (size_t i = 0; i < width; ++i) full += "\u2588";
  EXPECT_EQ(lines[0], full);
}

TEST(QrTerminalTest, TooLongTextIsRefused) {
  auto qr = RenderQrForTerminal(std::string(8000, 'x'));
  ASSERT_FALSE(qr.ok());
  EXPECT_EQ(qr.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace signet::cli
