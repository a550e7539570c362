import assert from "node:assert/strict";
import { test } from "node:test";

import { globMatch, isPattern } from "../glob.js";

test("glob patterns match as Redis (and the hub) match them", () => {
  const cases = [
    ["agent.*", "agent.a1", true],
    ["agent.*", "agents", false],
    ["*", "_sys.tasks", true],
    ["a?c", "abc", true],
    ["a?c", "ac", false],
    ["[a-c]x", "bx", true],
    ["[c-a]x", "bx", true], // reversed ranges match
    ["[^a]x", "ax", false],
    ["[]x", "x", false], // [] matches nothing
    ["a\\*", "a*", true],
    ["a\\*", "ab", false],
    ["x.y", "xzy", false], // a dot is literal
    ["feed", "feed", true],
  ];
  for (const [pattern, channel, expected] of cases) {
    assert.equal(globMatch(pattern, channel), expected, `${pattern} ~ ${channel}`);
  }
  assert.ok(isPattern("a.*") && !isPattern("a.b"));
});
