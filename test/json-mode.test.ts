// JSON mode: the byte-level recognizer of JSON object prefixes, the token constraint on the real
// tokenizer, and constrained drawing. The server's end-to-end test is in serve.test.ts.
import { describe, expect, test } from "bun:test";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import {
  constrainedSample,
  JsonConstraint,
  JsonPrefix,
  MAX_JSON_DEPTH,
  MAX_JSON_NUMBER_BYTES,
  MAX_JSON_WHITESPACE,
} from "../src/sampling/json.ts";
import { compileSchema, SchemaRecognizer } from "../src/sampling/json-schema.ts";
import { Sampler } from "../src/sampling/sampler.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";

const utf8 = new TextEncoder();

/** How far `text` gets: the bytes fed before one is refused, whether it ended complete. */
function run(text: string): { fed: number; complete: boolean } {
  const p = new JsonPrefix();
  const bytes = utf8.encode(text);
  let fed = 0;
  for (const b of bytes) {
    if (!p.feed(b)) break;
    fed++;
  }
  return { fed: fed === bytes.length ? -1 : fed, complete: p.complete };
}

describe("JsonPrefix", () => {
  test("every prefix of a valid object is accepted and only the whole is complete", () => {
    const docs = [
      "{}",
      ' { "a" : 1 } ',
      '{"a":[1,-2.5e+3,0,0.5,1E9,true,false,null,"x\\"y\\\\\\u00e9\\n"],"b":{"c":{}},"d":[]}',
      '{"emoji":"😀","nested":[[[{"k":[]}]]]}',
      JSON.stringify({ name: "hearth", list: [1, 2, { deep: [null] }], s: "tab\there" }, null, 2),
    ];
    for (const doc of docs) {
      expect(JSON.parse(doc)).toBeDefined();
      const bytes = utf8.encode(doc.trimEnd());
      const p = new JsonPrefix();
      for (const [i, b] of bytes.entries()) {
        expect([doc, i, p.feed(b)]).toEqual([doc, i, true]);
        expect(p.complete).toBe(i === bytes.length - 1);
      }
    }
  });

  test("refuses at the first byte no JSON object continues with", () => {
    const cases: Array<[string, number]> = [
      ["[1]", 0], // the top level must be an object
      ['"x"', 0],
      ["{a:1}", 1], // keys are strings
      ['{"a" 1}', 5],
      ['{"a":01}', 6], // no leading zeros
      ['{"a":1.}', 7],
      ['{"a":-}', 6],
      ['{"a":1e}', 7],
      ['{"a":tru}', 8],
      ['{"a":1,}', 7],
      ['{"a":[1,]}', 8],
      ['{"a":[}', 6],
      ['{"a":"\\x"}', 7],
      ['{"a":"\\u12g4"}', 10],
      ['{"a":"line\nbreak"}', 10], // raw control characters are not allowed in strings
      ["{}x", 2],
      ["{},", 2],
    ];
    for (const [text, at] of cases) expect([text, run(text).fed]).toEqual([text, at]);
  });

  test("limits: nesting depth and whitespace runs", () => {
    const deep = `{"a":${"[".repeat(MAX_JSON_DEPTH - 1)}`;
    expect(run(deep).fed).toBe(-1);
    expect(run(`${deep}[`).fed).toBe(deep.length);
    const ws = `{${" ".repeat(MAX_JSON_WHITESPACE)}`;
    expect(run(ws).fed).toBe(-1);
    expect(run(`${ws} `).fed).toBe(ws.length);
    const long = `{"a":${"1".repeat(MAX_JSON_NUMBER_BYTES)}`;
    expect(run(long).fed).toBe(-1);
    expect(run(`${long}1`).fed).toBe(long.length);
    // At the limit a number that cannot end there ("…1.") still takes the digit it needs: no dead end.
    const dot = `{"a":${"1".repeat(MAX_JSON_NUMBER_BYTES - 1)}.`;
    expect(run(`${dot}5`).fed).toBe(-1);
    expect(run(`${dot}55`).fed).toBe(dot.length + 1);
    expect(run(`${dot}5}`)).toEqual({ fed: -1, complete: true });
    // A whitespace run inside a string is text, not a run.
    expect(run(`{"a":"${" ".repeat(100)}"}`)).toEqual({ fed: -1, complete: true });
  });
});

describe("JsonConstraint on the real tokenizer", async () => {
  const tok = Tokenizer.fromGguf(new GgufMetadata(readGguf(await pullModel()).metadata));
  const bytes = (id: number) => tok.tokenBytes(id);
  const ids = (text: string) => tok.encode(text, { addSpecial: false });

  test("allows the tokens of a valid object, refuses control tokens and invalid text", () => {
    const json = new JsonConstraint(bytes);
    const doc = ids('{"name": "Ada", "born": 1815}');
    for (const id of doc) {
      expect(json.allows(id)).toBe(true);
      json.accept(id);
    }
    expect(json.complete).toBe(true);
    const fresh = new JsonConstraint(bytes);
    expect(fresh.allows(ids("Hello")[0] as number)).toBe(false);
    expect(fresh.allows(tok.eosId)).toBe(false);
    expect(() => fresh.accept(ids("x")[0] as number)).toThrow(/does not continue/);
  });

  test("constrainedSample: draws from the row restricted to valid tokens, whatever the model prefers", () => {
    const json = new JsonConstraint(bytes);
    const vocab = tok.vocabSize;
    const row = new Float32Array(vocab).fill(-5);
    const hello = ids("Hello")[0] as number;
    const brace = ids("{")[0] as number;
    row[hello] = 10; // the model wants prose
    row[tok.eosId] = 9;
    row[brace] = 1;
    const greedy = new Sampler({ temperature: 0 });
    expect(constrainedSample(row, json, (r) => greedy.sample(r))).toBe(brace);
    expect(row[hello]).toBe(10); // the model's row is left as it was
    // Past the redraws, the whole row is masked: still the best valid token.
    const prefers = new Float32Array(vocab).fill(-5);
    for (let id = 0; id < 200; id++) prefers[id] = 20 - id / 100;
    prefers[brace] = 0;
    const id = constrainedSample(prefers, new JsonConstraint(bytes), (r) => greedy.sample(r));
    expect(new JsonConstraint(bytes).allows(id)).toBe(true);
    // Seeded sampling: the same seed gives the same constrained draw.
    const draw = (seed: number) => {
      const s = new Sampler({ temperature: 1, topK: 0, topP: 1, minP: 0, seed });
      return constrainedSample(prefers, new JsonConstraint(bytes), (r) => s.sample(r));
    };
    expect(draw(3)).toBe(draw(3));
  });
});

describe("JSON Schema recognizer (structured outputs)", () => {
  const person = {
    type: "object",
    properties: {
      name: { type: "string" },
      age: { type: "integer" },
      role: { enum: ["admin", "user"] },
      tags: { type: "array", items: { type: "string" }, minItems: 1, maxItems: 2 },
      boss: {
        type: ["object", "null"],
        properties: { name: { type: "string" } },
        required: ["name"],
        additionalProperties: false,
      },
      score: { type: "number" },
      ok: { type: "boolean" },
    },
    required: ["name", "age", "role"],
    additionalProperties: false,
  };
  /** Bytes of `text` fed before one is refused (-1: all), and whether the value is complete. */
  const feed = (schema: unknown, text: string) => {
    const r = new SchemaRecognizer(compileSchema(schema));
    let s = r.start() as ReturnType<SchemaRecognizer["start"]> | null;
    const bytes = utf8.encode(text);
    let fed = 0;
    for (const b of bytes) {
      const next = r.step(s as NonNullable<typeof s>, b);
      if (next === null) break;
      s = next;
      fed++;
    }
    return { fed: fed === bytes.length ? -1 : fed, complete: r.complete(s as NonNullable<typeof s>) };
  };

  test("values that match are accepted to the end, every prefix along the way", () => {
    for (const doc of [
      '{"name":"Ada","age":36,"role":"admin"}',
      '{ "role" : "user", "age": -3, "name": "Bo", "tags": ["x"], "boss": null, "score": 1.5e3, "ok": true }',
      '{"name":"\\u00c9lo\\"d","age":0,"role":"user","boss":{"name":"Cy"},"tags":["a","b"]}',
    ]) {
      expect(JSON.parse(doc)).toBeDefined();
      expect([doc, feed(person, doc)]).toEqual([doc, { fed: -1, complete: true }]);
    }
  });

  test("refuses at the first byte the schema rules out", () => {
    const cases: Array<[string, number]> = [
      ['{"nam":1', 5], // no property is named "nam"
      ['{"extra"', 2], // additionalProperties false: "e" starts no property
      ['{"name":1', 8], // name is a string
      ['{"age":1.5', 8], // age is an integer
      ['{"role":"root"', 9], // not in the enum: "r" then "o" starts neither admin nor user
      ['{"name":"a","name"', 13], // a key once: "n" starts no key left
      ['{"name":"a"}', 11], // required age and role missing
      ['{"tags":[]', 9], // minItems 1
      ['{"tags":["a","b",', 16], // maxItems 2
      ['{"boss":{}', 9], // boss needs its name
      ['{"ok":nul', 6], // ok is a boolean
      [`{"age":${"9".repeat(30)}`, 7 + 24], // numbers end within 24 bytes
      [`{"score":${"9".repeat(23)}e+55`, 9 + 23 + 3], // …once they can: "e+" still takes its digit
      ['["a"]', 0], // the top level is the object
      // Every key given and no others allowed: no comma (a dead end), only the end.
      ['{"name":"a","age":1,"role":"user","tags":["x"],"boss":null,"score":1,"ok":true,', 78],
    ];
    for (const [text, at] of cases) expect([text, feed(person, text).fed]).toEqual([text, at]);
  });

  test("schemas outside the subset are refused when compiled, naming the keyword", () => {
    expect(() =>
      compileSchema({ type: "object", properties: { a: { type: "string", pattern: "x" } } }),
    ).toThrow(/schema\.properties\.a\.pattern is not supported/);
    expect(() => compileSchema({ anyOf: [] })).toThrow(/anyOf is not supported/);
    expect(() => compileSchema({ type: "strin" })).toThrow(/not a JSON type/);
    expect(() => new SchemaRecognizer(compileSchema({ type: "array" }))).toThrow(/top level/);
    expect(() => compileSchema({ type: "object", required: ["x"], additionalProperties: false })).toThrow(
      /required/,
    );
  });
});
