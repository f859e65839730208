import { ValidationError } from '@avatargen/core';
import { samplePersona } from '@avatargen/core/testing';
import { describe, expect, it } from 'vitest';
import { buildBasePrompt, buildGridPrompt, describePerson } from '../src/index.js';

const persona = samplePersona();

describe('buildBasePrompt', () => {
  it('describes an amateur selfie with the Facebook bio, gender in words, ethnicity and age', () => {
    const prompt = buildBasePrompt(persona);
    expect(prompt).toMatch(/amateur, not well-produced selfie/);
    expect(prompt).toContain(persona.bios.facebook);
    expect(prompt).toContain('female, Hispanic, 34 years old');
    expect(prompt).not.toMatch(/facial anatomy/);
  });

  it('leaves out the ethnicity and age when they are unknown', () => {
    const prompt = buildBasePrompt(samplePersona({ gender: 'm', ethnicity: '', age: null }));
    expect(prompt).toContain('The person: male.');
    expect(prompt).not.toMatch(/years old|null|undefined/);
  });

  it('leaves out an empty Facebook bio', () => {
    const prompt = buildBasePrompt(samplePersona({ bios: { ...persona.bios, facebook: '  ' } }));
    expect(prompt).not.toMatch(/Facebook bio/);
  });

  it('with a reference face, takes only facial anatomy from it, not ethnicity or gender', () => {
    const prompt = buildBasePrompt(persona, { withReferenceFace: true });
    expect(prompt).toMatch(/only as a reference for facial anatomy/);
    expect(prompt).toMatch(/Do not take ethnicity or gender from it: the person is female and Hispanic/);
  });

  it('ends with BASE_PROMPT_APPEND when set', () => {
    const prompt = buildBasePrompt(persona, { append: '  Shot on an old Android phone.  ' });
    expect(prompt.endsWith('\nShot on an old Android phone.')).toBe(true);
    expect(buildBasePrompt(persona, { append: '   ' })).toBe(buildBasePrompt(persona));
  });
});

describe('buildGridPrompt', () => {
  it('asks for a 2x2 grid of four different shots of the same person with white gutters, following the idea', () => {
    const prompt = buildGridPrompt(persona, 'at a farmers market, holding a coffee');
    expect(prompt).toMatch(/2x2 grid of four different photos of the same person/);
    expect(prompt).toMatch(/white gutters/);
    expect(prompt).toContain('at a farmers market, holding a coffee');
    expect(prompt).toContain(describePerson(persona));
  });

  it('ends with BASE_PROMPT_APPEND when set', () => {
    expect(buildGridPrompt(persona, 'hiking', { append: 'Grainy.' }).endsWith('\nGrainy.')).toBe(true);
  });

  it('refuses an empty idea with a ValidationError', () => {
    expect(() => buildGridPrompt(persona, ' \n ')).toThrow(ValidationError);
  });
});
