import { describe, expect, it } from 'vitest';
import { unusableCameras } from '../src/media/programmeNotice';

describe('the console notice of cameras the programme cannot use', () => {
  it('names a publisher whose only camera is VP8, not one with an H.264 camera or audio only', () => {
    const s = (participant: string, kind: string, mime: string, usable: boolean) => ({ participant, kind, mime, usable });
    const sources = [
      s('member:甲', 'video', 'video/H264', true),
      s('member:甲', 'audio', 'audio/opus', true),
      s('member:乙', 'video', 'video/VP8', false),
      s('member:乙', 'audio', 'audio/opus', true),
      s('member:丙', 'audio', 'audio/opus', true),
      s('member:丁', 'video', 'video/VP8', false),
      s('member:丁', 'video', 'video/H264', true),
    ];
    expect(unusableCameras(sources)).toEqual([{ participant: 'member:乙', mimes: ['video/VP8'] }]);
    expect(unusableCameras([])).toEqual([]);
  });
});
