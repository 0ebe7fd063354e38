#include "cli/table.h"

#include <algorithm>

#include "common/assert.h"

namespace spindle::cli {
namespace {

// Display width of UTF-8 text: count the bytes that start a code point.
size_t Width(const std::string& s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

void AppendCell(std::string& out, const std::string& cell, size_t width, Align align) {
  size_t pad = width - Width(cell);
  if (align == Align::kRight) out.append(pad, ' ');
  out += cell;
  if (align == Align::kLeft) out.append(pad, ' ');
}

}  // namespace

Table::Table(std::vector<std::string> headers)
    : headers_(std::move(headers)), align_(headers_.size(), Align::kLeft) {}

Table& Table::SetAlign(size_t column, Align align) {
  SP_ASSERT(column < align_.size());
  align_[column] = align;
  return *this;
}

void Table::AddRow(std::vector<std::string> cells) {
  SP_ASSERT(cells.size() <= headers_.size());
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> width(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) {
    width[c] = Width(headers_[c]);
    for (const auto& row : rows_) width[c] = std::max(width[c], Width(row[c]));
  }
  size_t total = 1;
  for (size_t w : width) total += w + 3;
  std::string rule(total, '-');
  rule += '\n';
  auto line = [&](const std::vector<std::string>& cells, bool header) {
    std::string out = "|";
    for (size_t c = 0; c < cells.size(); ++c) {
      out += ' ';
      AppendCell(out, cells[c], width[c], header ? Align::kLeft : align_[c]);
      out += " |";
    }
    return out + "\n";
  };
  std::string out = rule + line(headers_, true) + rule;
  for (const auto& row : rows_) out += line(row, false);
  out += rule;
  return out;
}

}  // namespace spindle::cli
