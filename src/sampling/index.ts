// Sampling: the Sampler (bias, penalties, top-k/p, min-p, temperature, seeded draw), stop handling.
export { MAX_TOP_LOGPROBS, type TokenLogprob, tokenLogprob } from "./logprobs.ts";
export { Rng, randomSeed } from "./rng.ts";
export { type RowKernelMode, setRowKernels } from "./row-kernels.ts";
export { argmax, selectTopK } from "./row-select.ts";
export { Sampler } from "./sampler.ts";
export {
  DEFAULT_SAMPLER_OPTIONS,
  MAX_LOGIT_BIAS,
  MAX_LOGIT_BIAS_ENTRIES,
  MAX_SEED,
  SamplerError,
  type SamplerOptions,
  type TokenDistribution,
} from "./sampler-options.ts";
export {
  type FinishReason,
  StopCondition,
  type StopConditionOptions,
  type StopMatch,
  StopMatcher,
  type StopStep,
} from "./stop.ts";
