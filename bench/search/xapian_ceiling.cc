// Stand-alone Xapian indexing ceiling: the indexer's term scheme without the server.
//
//   python3 - <<'PY'   # extracted text, one event per line: session \t type \t text (\n as \x01)
//   (see bench/search/bench.py extract(); any corpus from gen_corpus.py)
//   PY
//   g++ -O2 -std=c++20 bench/search/xapian_ceiling.cc -o /tmp/xapian_ceiling -lxapian
//   /tmp/xapian_ceiling TEXTS.tsv N COMMIT_EVERY MODE DB_DIR      (BS=65536 for the block size)
//
// MODE bits: 1 = no positions, 2 = DB_NO_TERMLIST, 4 = STEM_NONE (no Z stems). Prints wall and
// process CPU time split into term generation, add_document and commit_transaction. Used for the
// numbers in docs/search.md, "Performance".
#include <array>
#include <xapian.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>
#include <ctime>
#include <filesystem>
using namespace std;
static double cpu() { timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec/1e9; }
int main(int argc, char** argv) {
  string file = argv[1]; size_t n = atol(argv[2]); size_t every = atol(argv[3]);
  int mode = atoi(argv[4]);  // bit0: no positions; bit1: DB_NO_TERMLIST; bit2: no stems(STEM_NONE)
  string dir = argv[5];
  size_t skip = argc > 6 ? atol(argv[6]) : 0;
  vector<array<string,3>> docs; docs.reserve(n);
  ifstream f(file); string line;
  while (docs.size() < n && getline(f, line)) {
    size_t a = line.find('\t'), b = line.find('\t', a+1);
    string t = line.substr(b+1); for (auto& c : t) if (c == '\x01') c = '\n';
    docs.push_back({line.substr(0,a), line.substr(a+1,b-a-1), t});
  }
  if (skip == 0) std::filesystem::remove_all(dir);
  int flags = Xapian::DB_CREATE_OR_OPEN | Xapian::DB_BACKEND_GLASS | Xapian::DB_NO_SYNC;
  if (mode & 2) flags |= Xapian::DB_NO_TERMLIST;
  size_t bs = getenv("BS") ? atol(getenv("BS")) : 0; Xapian::WritableDatabase db(dir, flags, bs);
  Xapian::TermGenerator tg; tg.set_stemmer(Xapian::Stem("english"));
  tg.set_stemming_strategy((mode & 4) ? Xapian::TermGenerator::STEM_NONE : Xapian::TermGenerator::STEM_SOME);
  auto w0 = chrono::steady_clock::now(); double c0 = cpu(); double ccommit = 0; double cgen = 0, cadd = 0;
  db.begin_transaction(false);
  for (size_t i = skip; i < docs.size(); ++i) {
    double g0 = cpu();
    Xapian::Document d; tg.set_document(d);
    if (mode & 1) tg.index_text_without_positions(docs[i][2]); else tg.index_text(docs[i][2]);
    d.add_boolean_term("XS" + docs[i][0]); d.add_boolean_term("XT" + docs[i][1]); d.add_boolean_term("XKbench");
    d.set_data(docs[i][0] + "\n" + to_string(i));
    double g1 = cpu();
    db.add_document(d);
    double g2 = cpu(); cgen += g1-g0; cadd += g2-g1;
    if ((i+1-skip) % every == 0) { double t = cpu(); db.set_metadata("p:x", to_string(i)); db.commit_transaction(); db.begin_transaction(false); ccommit += cpu()-t; }
  }
  double t = cpu(); db.commit_transaction(); db.close(); ccommit += cpu()-t;
  double wall = chrono::duration<double>(chrono::steady_clock::now()-w0).count(), c = cpu()-c0;
  size_t m = docs.size()-skip;
  printf("n=%zu every=%zu mode=%d wall=%.2fs cpu=%.2fs (gen %.2f add %.2f commit %.2f) => %.0f docs/s wall, %.0f docs/cpu-s\n", m, every, mode, wall, c, cgen, cadd, ccommit, m/wall, m/c);
}
