// GGUF value types and GGML tensor types: ids, names and block sizes.

export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** Size in bytes of a scalar GGUF value type (strings and arrays excluded). */
export const scalarSizeBytes: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};

export interface GgmlTypeInfo {
  id: number;
  name: string;
  blockElements: number;
  blockSizeBytes: number;
}

const ggmlTypeList: GgmlTypeInfo[] = [
  { id: 0, name: "F32", blockElements: 1, blockSizeBytes: 4 },
  { id: 1, name: "F16", blockElements: 1, blockSizeBytes: 2 },
  { id: 2, name: "Q4_0", blockElements: 32, blockSizeBytes: 18 },
  { id: 3, name: "Q4_1", blockElements: 32, blockSizeBytes: 20 },
  { id: 6, name: "Q5_0", blockElements: 32, blockSizeBytes: 22 },
  { id: 7, name: "Q5_1", blockElements: 32, blockSizeBytes: 24 },
  { id: 8, name: "Q8_0", blockElements: 32, blockSizeBytes: 34 },
  { id: 9, name: "Q8_1", blockElements: 32, blockSizeBytes: 36 },
  { id: 10, name: "Q2_K", blockElements: 256, blockSizeBytes: 84 },
  { id: 11, name: "Q3_K", blockElements: 256, blockSizeBytes: 110 },
  { id: 12, name: "Q4_K", blockElements: 256, blockSizeBytes: 144 },
  { id: 13, name: "Q5_K", blockElements: 256, blockSizeBytes: 176 },
  { id: 14, name: "Q6_K", blockElements: 256, blockSizeBytes: 210 },
  { id: 15, name: "Q8_K", blockElements: 256, blockSizeBytes: 292 },
  { id: 16, name: "IQ2_XXS", blockElements: 256, blockSizeBytes: 66 },
  { id: 17, name: "IQ2_XS", blockElements: 256, blockSizeBytes: 74 },
  { id: 18, name: "IQ3_XXS", blockElements: 256, blockSizeBytes: 98 },
  { id: 19, name: "IQ1_S", blockElements: 256, blockSizeBytes: 50 },
  { id: 20, name: "IQ4_NL", blockElements: 32, blockSizeBytes: 18 },
  { id: 21, name: "IQ3_S", blockElements: 256, blockSizeBytes: 110 },
  { id: 22, name: "IQ2_S", blockElements: 256, blockSizeBytes: 82 },
  { id: 23, name: "IQ4_XS", blockElements: 256, blockSizeBytes: 136 },
  { id: 24, name: "I8", blockElements: 1, blockSizeBytes: 1 },
  { id: 25, name: "I16", blockElements: 1, blockSizeBytes: 2 },
  { id: 26, name: "I32", blockElements: 1, blockSizeBytes: 4 },
  { id: 27, name: "I64", blockElements: 1, blockSizeBytes: 8 },
  { id: 28, name: "F64", blockElements: 1, blockSizeBytes: 8 },
  { id: 29, name: "IQ1_M", blockElements: 256, blockSizeBytes: 56 },
  { id: 30, name: "BF16", blockElements: 1, blockSizeBytes: 2 },
  { id: 34, name: "TQ1_0", blockElements: 256, blockSizeBytes: 54 },
  { id: 35, name: "TQ2_0", blockElements: 256, blockSizeBytes: 66 },
  { id: 39, name: "MXFP4", blockElements: 32, blockSizeBytes: 17 },
];

export const ggmlTypes: ReadonlyMap<number, GgmlTypeInfo> = new Map(ggmlTypeList.map((t) => [t.id, t]));

/** Tensor types the native kernels compute with. Others parse but cannot be loaded. */
export const computableGgmlTypes: ReadonlySet<number> = new Set([
  0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 20, 23, 30,
]);
