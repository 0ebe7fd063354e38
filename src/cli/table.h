// StorPool-style text tables: a '-' rule, the header row, a rule, the rows, a closing rule;
// cells separated by " | " and padded to the widest cell of their column.
#pragma once

#include <string>
#include <vector>

namespace spindle::cli {

enum class Align { kLeft, kRight };

class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  // Right-aligns a column (numbers); columns are left-aligned by default.
  Table& SetAlign(size_t column, Align align);
  // Short rows are padded with empty cells; extra cells are an error caught by SP_ASSERT.
  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<Align> align_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace spindle::cli
