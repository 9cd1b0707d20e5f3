/* embedding.cu in the CUDA emulation: the forward gather exactly, and the backward bit for bit against
 * lt_embedding_bwd at ISA ref (a repeated id, the last row, ids that never occur, C at warp and block tails). The
 * positions are grouped by id here as the Java backend groups them (in increasing index order). Tolerance 0: both
 * add each element's terms in index order in float. Run: build/embedding_cuda_test */
#include <algorithm>
#include <map>
#include <vector>

#include "../embedding/embedding.cu"
#include "lt_cuda_test.h"

int main() {
    lt_set_isa(LT_ISA_REF);
    uint64_t s = 43;
    struct { int64_t n, c, vocab; } cs[] = {{1, 1, 1}, {7, 3, 5}, {64, 37, 65}, {300, 129, 11}, {32, 256, 1000}};
    for (auto k : cs) {
        std::vector<int32_t> ids(k.n);
        for (int64_t i = 0; i < k.n; i++) ids[i] = (int32_t)(lt_t_next(&s) % (uint64_t)k.vocab);
        if (k.n > 3) { ids[1] = ids[0]; ids[k.n - 1] = (int32_t)(k.vocab - 1); }
        std::vector<float> table(k.vocab * k.c), out(k.n * k.c, NAN), dout(k.n * k.c), want(k.vocab * k.c), got;
        lt_t_fill(table.data(), k.vocab * k.c, &s);
        lt_t_fill(dout.data(), k.n * k.c, &s);
        LAUNCH(ltk_embedding_fwd, dim3(lt_cu_blocks(k.n * k.c, 256)), dim3(256), 0, k.n, k.c, (const int32_t *)ids.data(),
               (const float *)table.data(), out.data());
        int64_t bad = 0;
        for (int64_t i = 0; i < k.n; i++)
            for (int64_t j = 0; j < k.c; j++) bad += memcmp(&out[i * k.c + j], &table[ids[i] * k.c + j], 4) != 0;
        CHECK(bad == 0, "embedding fwd n=%lld c=%lld: %lld differ", (long long)k.n, (long long)k.c, (long long)bad);
        std::map<int32_t, std::vector<int32_t>> by;
        for (int64_t i = 0; i < k.n; i++) by[ids[i]].push_back((int32_t)i);
        std::vector<int32_t> uniq, start, pos;
        for (auto &e : by) {
            uniq.push_back(e.first);
            start.push_back((int32_t)pos.size());
            pos.insert(pos.end(), e.second.begin(), e.second.end());
        }
        start.push_back((int32_t)pos.size());
        want = table;
        got = table;
        CHECK(lt_embedding_bwd(k.n, k.c, k.vocab, ids.data(), dout.data(), want.data()) == LT_OK, "lt_embedding_bwd");
        LAUNCH(ltk_embedding_bwd, dim3((unsigned)uniq.size(), (unsigned)((k.c + 127) / 128)), dim3(128), 0, (int64_t)uniq.size(),
               k.c, (const int32_t *)uniq.data(), (const int32_t *)start.data(), (const int32_t *)pos.data(),
               (const float *)dout.data(), got.data());
        bad = 0;
        for (int64_t e = 0; e < k.vocab * k.c; e++) bad += memcmp(&got[e], &want[e], 4) != 0;
        CHECK(bad == 0, "embedding bwd n=%lld c=%lld vocab=%lld: %lld of %lld differ from lt_embedding_bwd", (long long)k.n,
              (long long)k.c, (long long)k.vocab, (long long)bad, (long long)(k.vocab * k.c));        /* padded to min(n, vocab) rows with empty groups (uniq 0, start n), as the Java side uploads them so that the
         * launch does not depend on the ids (CUDA graphs): the same bits, the padding touches nothing (under
         * CUDA_EMU_WORKERS > 1 a padding block writing row 0 back would race with the real one) */
        const size_t rows = (size_t)std::min<int64_t>(k.n, k.vocab);
        std::vector<int32_t> pu = uniq, ps(start.begin(), start.end() - 1);
        while (pu.size() < rows) { pu.push_back(0); ps.push_back((int32_t)k.n); }
        ps.push_back((int32_t)k.n);
        std::vector<float> gotp = table;
        LAUNCH(ltk_embedding_bwd, dim3((unsigned)rows, (unsigned)((k.c + 127) / 128)), dim3(128), 0, (int64_t)rows, k.c,
               (const int32_t *)pu.data(), (const int32_t *)ps.data(), (const int32_t *)pos.data(), (const float *)dout.data(),
               gotp.data());
        bad = 0;
        for (int64_t e = 0; e < k.vocab * k.c; e++) bad += memcmp(&gotp[e], &want[e], 4) != 0;
        CHECK(bad == 0, "embedding bwd padded to %zu rows n=%lld c=%lld vocab=%lld: %lld differ", rows, (long long)k.n, (long long)k.c,
              (long long)k.vocab, (long long)bad);
    }
    return lt_test_summary();
}
