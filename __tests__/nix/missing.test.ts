// Reading Nix's printMissing listing (as nix-store --realise --dry-run prints it on 2.8 and 2.34).
import { describe, expect, test } from '@jest/globals';
import { parseMissing } from '../../src/nix/missing.js';

describe('parseMissing', () => {
  test.each([
    ['2.8', '0.00 MiB download, 0.00 MiB unpacked'],
    ['2.34', '0.1 KiB download, 0.1 KiB unpacked'],
  ])('reads the fetch and unknown sections of Nix %s', (_version, size) => {
    const text = [
      'warning: something unrelated',
      'this derivation will be built:',
      '  /s/x9cvi7lxas234cflv6jmm69m3lxh6cby-a.drv',
      `these 2 paths will be fetched (${size}):`,
      '  /s/3kdnb759mrl39bf4rm0xdii70hk1zxdb-a',
      '  /s/4kdnb759mrl39bf4rm0xdii70hk1zxdb-b',
      "don't know how to build these paths:",
      '  /s/00000000000000000000000000000000-x',
      '',
    ].join('\n');
    expect(parseMissing(text)).toEqual({
      fetch: ['/s/3kdnb759mrl39bf4rm0xdii70hk1zxdb-a', '/s/4kdnb759mrl39bf4rm0xdii70hk1zxdb-b'],
      unknown: ['/s/00000000000000000000000000000000-x'],
      fetchSize: size,
    });
  });

  test('nothing missing: empty lists and no size', () => {
    expect(parseMissing('')).toEqual({ fetch: [], unknown: [] });
    expect(
      parseMissing(
        'this path will be fetched (1 MiB download, 2 MiB unpacked):\n  /s/a\nwarning: x\n  /s/b\n',
      ),
    ).toEqual({
      fetch: ['/s/a'],
      unknown: [],
      fetchSize: '1 MiB download, 2 MiB unpacked',
    });
  });
});
