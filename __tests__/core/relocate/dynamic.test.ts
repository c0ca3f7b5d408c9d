// The placeholders of dynamic-derivation outputs, against what Nix 2.34 wrote (golden values from
// `nix-instantiate` of __tests__/fixtures/fidelity/dynamic.nix), and the child-map syntax.
import { describe, expect, test } from '@jest/globals';
import { MalformedError } from '../../../src/core/errors.js';
import { dynamicPlaceholders, parseDynamicOutputs } from '../../../src/core/relocate/dynamic.js';

const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

describe('dynamic-derivation placeholders', () => {
  test('one and two levels of outputOf give the placeholders Nix 2.34 writes', () => {
    // dynamic.drv: ("…-inner.drv.drv",([],[("out",["out"])])) and the placeholder in its builder.
    expect(
      dynamicPlaceholders(
        '/tmp/fid/a34/store/m1ka3mcm93l3x30lxggsf182wma9ya0f-inner.drv.drv',
        parseDynamicOutputs(enc('[("out",["out"])]')),
      ),
    ).toEqual(['0c48890r0vj6a7232x5a4k7hk9y2mmphv44z9g7qd0qnvf774c9b']);
    // nested.drv: ("…-inner.drv.drv.drv",([],[("out",([],[("out",["out"])]))])).
    expect(
      dynamicPlaceholders(
        '/tmp/fid/dx/store/7i33lnnzbbr5yb6ihsiq2kvsq91b4mln-inner.drv.drv.drv',
        parseDynamicOutputs(enc('[("out",([],[("out",["out"])]))]')),
      ),
    ).toEqual(['12bwsfjxwk106x736dq6krk95qf6zvpmci780bq96855vcdnc63h']);
  });

  test('the child map is read as Nix writes it, and nothing else', () => {
    expect(parseDynamicOutputs(enc('[("a",["x","y"]),("b",(["z"],[("c",[])]))]'))).toEqual([
      { name: 'a', outputs: ['x', 'y'], children: [] },
      { name: 'b', outputs: ['z'], children: [{ name: 'c', outputs: [], children: [] }] },
    ]);
    expect(parseDynamicOutputs(enc('[]'))).toEqual([]);
    for (const bad of ['', '[', '[("a")]', '[("a",["x"])]x', '[("a",(["x"]))]', '[("a,["x"])]'])
      expect(() => parseDynamicOutputs(enc(bad))).toThrow(MalformedError);
  });
});
