// llama.cpp's logits for given token ids at every position, from the native build (the oracle of
// the architecture parity fixtures; bench/peers/llamacpp-logits.sh builds it).
//
//   llamacpp-logits MODEL OUT.f32 IDS [BATCH]
//
// IDS is a comma-separated list fed as one sequence from position 0, BATCH tokens per decode call
// (default: all at once); OUT gets one row of n_vocab f32 logits per token, in order. Flash
// attention off, F16 KV, 2 threads: the settings hearth's parity tests compare against.
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL OUT.f32 IDS [BATCH]\n", argv[0]);
        return 2;
    }
    std::vector<llama_token> ids;
    for (const char * p = argv[3]; *p;) {
        char * end = nullptr;
        ids.push_back((llama_token) strtol(p, &end, 10));
        if (end == p) {
            fprintf(stderr, "bad id list\n");
            return 2;
        }
        p = *end == ',' ? end + 1 : end;
    }
    const int n = (int) ids.size();
    const int batch = argc > 4 ? atoi(argv[4]) : n;
    if (batch <= 0) {
        fprintf(stderr, "bad batch size\n");
        return 2;
    }
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) return 1;
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n < 512 ? 512 : ((n + 255) / 256) * 256;
    cp.n_batch = cp.n_ctx;
    cp.n_ubatch = cp.n_ctx;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) return 1;
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    std::vector<float> out((size_t) n * n_vocab);
    llama_batch b = llama_batch_init(batch, 0, 1);
    for (int at = 0; at < n; at += batch) {
        const int cnt = n - at < batch ? n - at : batch;
        b.n_tokens = cnt;
        for (int i = 0; i < cnt; i++) {
            b.token[i] = ids[at + i];
            b.pos[i] = at + i;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = 1;
        }
        if (llama_decode(ctx, b) != 0) {
            fprintf(stderr, "decode failed at %d\n", at);
            return 1;
        }
        for (int i = 0; i < cnt; i++) memcpy(&out[(size_t) (at + i) * n_vocab], llama_get_logits_ith(ctx, i), sizeof(float) * n_vocab);
    }
    FILE * f = fopen(argv[2], "wb");
    if (!f || fwrite(out.data(), sizeof(float), out.size(), f) != out.size()) return 1;
    fclose(f);
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
