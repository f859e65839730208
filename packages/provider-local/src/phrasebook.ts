import type { Gender, Platform } from '@avatargen/core';
import type { Occupation, PlaceKind } from './occupations.js';

/** Text that depends on the persona's gender (grammatical agreement), or does not. */
export type Gendered = string | { f: string; m: string };

export function resolveGendered(text: Gendered, gender: Gender): string {
  return typeof text === 'string' ? text : text[gender];
}

/**
 * The words and sentence templates of one bio language. Templates use {placeholders}: first,
 * job, jobLower, aJob, role, workplace, school, study, studied, studiedAbout, city, state,
 * prevCity, prevState, years (yearsAr: with the Arabic counted noun), h1..h3 (hobbies), e1, e2 (emoji), motto.
 */
export interface Phrasebook {
  id: 'en' | 'de' | 'pt' | 'ja' | 'ar';
  occupations: Record<Occupation, Gendered>;
  /** Field of study that leads to each job. */
  studies: Record<Occupation, string>;
  student: Gendered;
  /** {job} -> the retired form. */
  retired: Gendered;
  /** {job}, {workplace} -> "Nurse at X". */
  roleAt: Gendered;
  /** {job} (student), {school} -> "Student at X". */
  studentAt: Gendered;
  studied: Gendered;
  studying: Gendered;
  studiedAbout: Gendered;
  places: Record<Exclude<PlaceKind, 'company'>, readonly string[]>;
  /** Company names, for locales where faker has none of its own (or, with ownCompanies, instead of faker's). */
  companies?: readonly string[];
  /** Use `companies` even where faker has company names (pt_PT's end in the made-up "ULTDA"). */
  ownCompanies?: boolean;
  universities: readonly string[];
  vocational: readonly string[];
  /** Sixteen hobbies, in the same order as HOBBY_EMOJI. */
  hobbies: readonly string[];
  mottos: readonly string[];
  bios: Record<Platform, readonly Gendered[]>;
  about: {
    origin: readonly Gendered[];
    work: readonly Gendered[];
    student: readonly Gendered[];
    retired: readonly Gendered[];
    hobbies: readonly Gendered[];
    trait: readonly Gendered[];
  };
}

/** One emoji per hobby (single code points, so lengths are predictable). */
export const HOBBY_EMOJI = ['⛰', '🍳', '📷', '🧘', '📚', '🌿', '🏃', '🎲', '🚲', '🎨', '🎸', '🧁', '✈', '🏊', '🎣', '♟'];

const en: Phrasebook = {
  id: 'en',
  occupations: {
    nurse: 'Registered Nurse',
    teacher: 'Teacher',
    developer: 'Software Developer',
    accountant: 'Accountant',
    designer: 'Graphic Designer',
    electrician: 'Electrician',
    marketing: 'Marketing Manager',
    pharmacist: 'Pharmacist',
    chef: 'Chef',
    sales: 'Sales Associate',
    engineer: 'Civil Engineer',
    physio: 'Physical Therapist',
    journalist: 'Journalist',
    architect: 'Architect',
    mechanic: 'Auto Mechanic',
    doctor: 'Physician',
    lawyer: 'Attorney',
    barista: 'Barista',
    photographer: 'Photographer',
  },
  studies: {
    nurse: 'Nursing',
    teacher: 'Education',
    developer: 'Computer Science',
    accountant: 'Accounting',
    designer: 'Graphic Design',
    electrician: 'Electrical Technology',
    marketing: 'Marketing',
    pharmacist: 'Pharmacy',
    chef: 'Culinary Arts',
    sales: 'Business Administration',
    engineer: 'Civil Engineering',
    physio: 'Physical Therapy',
    journalist: 'Journalism',
    architect: 'Architecture',
    mechanic: 'Automotive Technology',
    doctor: 'Medicine',
    lawyer: 'Law',
    barista: 'Hospitality',
    photographer: 'Photography',
  },
  student: 'Student',
  retired: 'Retired {jobLower}',
  roleAt: '{job} at {workplace}',
  studentAt: 'Student at {school}',
  studied: 'Studied {study} at {school}.',
  studying: 'Studying {study} at {school}.',
  studiedAbout: 'Studied {study} at {school}.',
  places: {
    hospital: ['{city} General Hospital', '{city} Medical Center', '{name} Family Clinic'],
    school: ['{city} High School', '{city} Elementary School', '{name} Middle School'],
    restaurant: ["{name}'s Kitchen", 'The {city} Grill', 'Bistro {name}'],
    cafe: ["{name}'s Coffee", '{city} Coffee Co.', 'The Daily Grind'],
    shop: ['{name} & Co.', '{city} Outfitters', '{name} Home Goods'],
    pharmacy: ['{city} Pharmacy', '{name} Drugstore'],
    studio: ['{name} Photography', '{name} Studio'],
    workshop: ['{name} Auto Repair', '{city} Motors'],
  },
  universities: ['University of {city}', '{state} State University', '{city} College'],
  vocational: ['{city} Community College', '{city} Technical College'],
  hobbies: [
    'hiking',
    'cooking',
    'photography',
    'yoga',
    'reading',
    'gardening',
    'running',
    'board games',
    'cycling',
    'painting',
    'live music',
    'baking',
    'travel',
    'swimming',
    'fishing',
    'chess',
  ],
  mottos: ['Stay curious', 'One day at a time', 'Coffee first', 'Small steps, big views', 'Good vibes only'],
  bios: {
    x: [
      '{role} | {h1} | {h2} | {city}',
      '{job} by day, {h1} enthusiast by night. {city}. Opinions my own.',
      'Professional overthinker, part-time {h1} fan. {role}.',
      '{city} | {h1}, {h2} and strong coffee | {job}',
    ],
    instagram: [
      '{e1} {role}\n{e2} {h1} & {h2}\n📍 {city}',
      '{motto} {e1}\n{job} • {h1} • {h2}',
      '📍 {city}\n{e1} {h1} | {e2} {h2}\n{motto}',
      '{e1} {job}\n📍 {city}',
    ],
    tiktok: ['{h1} + {h2} {e1}{e2}', '{city} | {h1} {e1}', 'pov: {jobLower} who loves {h1} {e1}', '{h1} {e1}'],
    facebook: [
      "Hi, I'm {first}! {role} in {city}. {studied} Weekends are for {h1} and {h2}.",
      '{role}. Proud {city} local, originally from {prevCity}. Happiest with {h1}, {h2} and good friends.',
      '{job} who loves {h1}. Grew up in {prevCity}, now in {city}, {state}. Always up for {h2}.',
      "Hi, I'm {first}! {role}. I love {h1}.",
    ],
  },
  about: {
    origin: [
      'Grew up in {prevCity}, {prevState}, and has lived in {city}, {state} for {years} years.',
      '{first} is originally from {prevCity} and moved to {city} {years} years ago.',
    ],
    work: ['Works as {aJob} at {workplace}.', 'Works at {workplace} as {aJob}.'],
    student: ['Studies {study} at {school}.', 'Is working towards a degree in {study} at {school}.'],
    retired: ['Retired after many years as {aJob} at {workplace}.'],
    hobbies: ['Spends free time on {h1}, {h2} and {h3}.', 'Loves {h1}, {h2} and {h3}.'],
    trait: [
      'Known among friends as the one who plans every trip.',
      'Never says no to a good cup of coffee.',
      'Collects postcards from every city visited.',
      'Cannot walk past a dog without saying hello.',
      'Always has a playlist ready for any occasion.',
    ],
  },
};

const de: Phrasebook = {
  id: 'de',
  occupations: {
    nurse: { f: 'Pflegefachfrau', m: 'Pflegefachmann' },
    teacher: { f: 'Lehrerin', m: 'Lehrer' },
    developer: { f: 'Softwareentwicklerin', m: 'Softwareentwickler' },
    accountant: { f: 'Buchhalterin', m: 'Buchhalter' },
    designer: { f: 'Grafikdesignerin', m: 'Grafikdesigner' },
    electrician: { f: 'Elektrikerin', m: 'Elektriker' },
    marketing: { f: 'Marketingmanagerin', m: 'Marketingmanager' },
    pharmacist: { f: 'Apothekerin', m: 'Apotheker' },
    chef: { f: 'Köchin', m: 'Koch' },
    sales: { f: 'Verkäuferin', m: 'Verkäufer' },
    engineer: { f: 'Bauingenieurin', m: 'Bauingenieur' },
    physio: { f: 'Physiotherapeutin', m: 'Physiotherapeut' },
    journalist: { f: 'Journalistin', m: 'Journalist' },
    architect: { f: 'Architektin', m: 'Architekt' },
    mechanic: { f: 'Kfz-Mechatronikerin', m: 'Kfz-Mechatroniker' },
    doctor: { f: 'Ärztin', m: 'Arzt' },
    lawyer: { f: 'Rechtsanwältin', m: 'Rechtsanwalt' },
    barista: 'Barista',
    photographer: { f: 'Fotografin', m: 'Fotograf' },
  },
  studies: {
    nurse: 'Pflegewissenschaft',
    teacher: 'Lehramt',
    developer: 'Informatik',
    accountant: 'Betriebswirtschaft',
    designer: 'Kommunikationsdesign',
    electrician: 'Elektrotechnik',
    marketing: 'Marketing',
    pharmacist: 'Pharmazie',
    chef: 'Gastronomie',
    sales: 'Betriebswirtschaft',
    engineer: 'Bauingenieurwesen',
    physio: 'Physiotherapie',
    journalist: 'Journalistik',
    architect: 'Architektur',
    mechanic: 'Kfz-Technik',
    doctor: 'Medizin',
    lawyer: 'Rechtswissenschaft',
    barista: 'Hotelfach',
    photographer: 'Fotografie',
  },
  student: { f: 'Studentin', m: 'Student' },
  retired: '{job} im Ruhestand',
  roleAt: '{job} bei {workplace}',
  studentAt: '{job} an der {school}',
  studied: 'Abschluss in {study}, {school}.',
  studying: 'Studiere {study} an der {school}.',
  studiedAbout: 'Abschluss in {study} an der {school}.',
  places: {
    hospital: ['Klinikum {city}', 'St.-Marien-Krankenhaus {city}', 'Praxis {name}'],
    school: ['Gymnasium {city}', 'Grundschule am Park', 'Gesamtschule {city}'],
    restaurant: ['Restaurant {name}', 'Gasthaus zur Linde', 'Brauhaus {city}'],
    cafe: ['Café {name}', 'Kaffeehaus {city}'],
    shop: ['Kaufhaus {city}', '{name} Moden', 'Buchhandlung {name}'],
    pharmacy: ['Stadt-Apotheke {city}', 'Apotheke am Markt'],
    studio: ['Fotostudio {name}', 'Atelier {name}'],
    workshop: ['Autohaus {name}', 'Kfz-Werkstatt {name}'],
  },
  universities: ['Universität {city}', 'Hochschule {city}', 'Fachhochschule {city}'],
  vocational: ['Berufsschule {city}', 'Berufskolleg {city}'],
  hobbies: [
    'Wandern',
    'Kochen',
    'Fotografie',
    'Yoga',
    'Lesen',
    'Gärtnern',
    'Laufen',
    'Brettspiele',
    'Radfahren',
    'Malen',
    'Konzerte',
    'Backen',
    'Reisen',
    'Schwimmen',
    'Angeln',
    'Schach',
  ],
  mottos: ['Immer neugierig bleiben', 'Kaffee zuerst', 'Kleine Schritte, große Aussichten', 'Mehr Meer, bitte'],
  bios: {
    x: [
      '{role} | {h1} | {h2} | {city}',
      '{job} aus {city}. {h1}, {h2} und zu viel Kaffee.',
      'Tagsüber {job}, abends {h1}. Meinungen sind meine eigenen.',
      '{city} | {h1} | {job}',
    ],
    instagram: [
      '{e1} {role}\n{e2} {h1} & {h2}\n📍 {city}',
      '{motto} {e1}\n{job} • {h1} • {h2}',
      '📍 {city}\n{e1} {h1} | {e2} {h2}\n{motto}',
      '{e1} {job}\n📍 {city}',
    ],
    tiktok: ['{h1} + {h2} {e1}{e2}', '{city} | {h1} {e1}', 'Mein Ding: {h1} {e1}', '{h1} {e1}'],
    facebook: [
      'Hallo, ich bin {first}! {role} in {city}. {studied} In meiner Freizeit: {h1} und {h2}.',
      '{role}. Aufgewachsen in {prevCity}, jetzt zu Hause in {city}. Am glücklichsten mit {h1}, {h2} und guten Freunden.',
      '{job} mit Leidenschaft für {h1}. Wohne in {city}, {state}. Immer zu haben für {h2}.',
      'Hallo, ich bin {first}! {role}. Ich liebe {h1}.',
    ],
  },
  about: {
    origin: [
      'Aufgewachsen in {prevCity} ({prevState}), seit {years} Jahren in {city}, {state}.',
      '{first} stammt aus {prevCity} und lebt seit {years} Jahren in {city}.',
    ],
    work: ['Arbeitet als {job} bei {workplace}.'],
    student: ['Studiert {study} an der {school}.'],
    retired: ['Nach vielen Jahren als {job} bei {workplace} jetzt im Ruhestand.'],
    hobbies: ['In der Freizeit: {h1}, {h2} und {h3}.', 'Liebt {h1}, {h2} und {h3}.'],
    trait: [
      'Im Freundeskreis als die Person bekannt, die jede Reise plant.',
      'Sagt nie Nein zu einer guten Tasse Kaffee.',
      'Sammelt Postkarten aus jeder besuchten Stadt.',
      'Kann an keinem Hund vorbeigehen, ohne Hallo zu sagen.',
    ],
  },
};

const pt: Phrasebook = {
  id: 'pt',
  occupations: {
    nurse: { f: 'Enfermeira', m: 'Enfermeiro' },
    teacher: { f: 'Professora', m: 'Professor' },
    developer: { f: 'Desenvolvedora de software', m: 'Desenvolvedor de software' },
    accountant: { f: 'Contadora', m: 'Contador' },
    designer: { f: 'Designer gráfica', m: 'Designer gráfico' },
    electrician: 'Eletricista',
    marketing: 'Gerente de marketing',
    pharmacist: { f: 'Farmacêutica', m: 'Farmacêutico' },
    chef: { f: 'Cozinheira', m: 'Cozinheiro' },
    sales: { f: 'Vendedora', m: 'Vendedor' },
    engineer: { f: 'Engenheira civil', m: 'Engenheiro civil' },
    physio: 'Fisioterapeuta',
    journalist: 'Jornalista',
    architect: { f: 'Arquiteta', m: 'Arquiteto' },
    mechanic: { f: 'Mecânica', m: 'Mecânico' },
    doctor: { f: 'Médica', m: 'Médico' },
    lawyer: { f: 'Advogada', m: 'Advogado' },
    barista: 'Barista',
    photographer: { f: 'Fotógrafa', m: 'Fotógrafo' },
  },
  studies: {
    nurse: 'Enfermagem',
    teacher: 'Pedagogia',
    developer: 'Ciência da Computação',
    accountant: 'Ciências Contábeis',
    designer: 'Design Gráfico',
    electrician: 'Eletrotécnica',
    marketing: 'Marketing',
    pharmacist: 'Farmácia',
    chef: 'Gastronomia',
    sales: 'Administração',
    engineer: 'Engenharia Civil',
    physio: 'Fisioterapia',
    journalist: 'Jornalismo',
    architect: 'Arquitetura e Urbanismo',
    mechanic: 'Mecânica Automotiva',
    doctor: 'Medicina',
    lawyer: 'Direito',
    barista: 'Hotelaria',
    photographer: 'Fotografia',
  },
  student: 'Estudante',
  retired: { f: '{job} aposentada', m: '{job} aposentado' },
  roleAt: '{job} em {workplace}',
  studentAt: '{job} na {school}',
  studied: { f: 'Formada em {study} pela {school}.', m: 'Formado em {study} pela {school}.' },
  studying: 'Estudando {study} na {school}.',
  studiedAbout: { f: 'Formada em {study} pela {school}.', m: 'Formado em {study} pela {school}.' },
  places: {
    hospital: ['Hospital Municipal de {city}', 'Hospital São Lucas', 'Clínica {name}'],
    school: ['Escola Estadual {name}', 'Colégio {city}', 'Escola Municipal de {city}'],
    restaurant: ['Restaurante {name}', 'Cantina {name}'],
    cafe: ['Café {name}', 'Padaria {city}'],
    shop: ['Lojas {name}', 'Magazine {city}'],
    pharmacy: ['Drogaria {city}', 'Farmácia {name}'],
    studio: ['Estúdio {name}', 'Ateliê {name}'],
    workshop: ['Oficina {name}', 'Auto Center {city}'],
  },
  universities: ['Universidade Federal de {state}', 'Universidade de {city}', 'Faculdade de {city}'],
  vocational: ['Escola Técnica de {city}', 'Escola Técnica Estadual {name}'],
  hobbies: [
    'trilhas',
    'cozinhar',
    'fotografia',
    'ioga',
    'leitura',
    'jardinagem',
    'corrida',
    'jogos de tabuleiro',
    'ciclismo',
    'pintura',
    'música ao vivo',
    'confeitaria',
    'viajar',
    'natação',
    'pescaria',
    'xadrez',
  ],
  mottos: ['Um dia de cada vez', 'Café primeiro', 'Menos pressa, mais praia', 'Gratidão sempre'],
  bios: {
    x: [
      '{role} | {h1} | {h2} | {city}',
      '{job} de dia, fã de {h1} à noite. {city}.',
      '{city} | {h1}, {h2} e muito café | {job}',
      '{city} | {h1} | {job}',
    ],
    instagram: [
      '{e1} {role}\n{e2} {h1} & {h2}\n📍 {city}',
      '{motto} {e1}\n{job} • {h1} • {h2}',
      '📍 {city}\n{e1} {h1} | {e2} {h2}\n{motto}',
      '{e1} {job}\n📍 {city}',
    ],
    tiktok: ['{h1} + {h2} {e1}{e2}', '{city} | {h1} {e1}', 'vida de {jobLower} {e1}', '{h1} {e1}'],
    facebook: [
      'Oi, eu sou {first}! {role}, em {city}. {studied} Nas horas livres: {h1} e {h2}.',
      '{role}. Nasci em {prevCity} e hoje moro em {city}, {state}. Feliz com {h1}, {h2} e bons amigos.',
      {
        f: '{job} apaixonada por {h1}. Moro em {city}, {state}. Sempre topo {h2}.',
        m: '{job} apaixonado por {h1}. Moro em {city}, {state}. Sempre topo {h2}.',
      },
      'Oi, eu sou {first}! {role}. Amo {h1}.',
    ],
  },
  about: {
    origin: [
      'Cresceu em {prevCity}, {prevState}, e vive em {city}, {state}, há {years} anos.',
      '{first} é de {prevCity} e mora em {city} há {years} anos.',
    ],
    work: ['Trabalha como {jobLower} em {workplace}.'],
    student: ['Estuda {study} na {school}.'],
    retired: [
      {
        f: 'Aposentada depois de muitos anos como {jobLower} em {workplace}.',
        m: 'Aposentado depois de muitos anos como {jobLower} em {workplace}.',
      },
    ],
    hobbies: ['Nas horas livres gosta de {h1}, {h2} e {h3}.'],
    trait: [
      'Nunca recusa um café com os amigos.',
      'Coleciona cartões-postais de cada cidade que visita.',
      'Não resiste a um cachorro na rua.',
      'Sempre tem uma playlist pronta para qualquer ocasião.',
    ],
  },
};

/** Company names of Portugal (faker's pt_PT ones end in the made-up "ULTDA"), for people of Portugal in any language. */
export const PORTUGUESE_COMPANIES = [
  '{name} & Filhos, Lda.',
  '{name}, Lda.',
  '{name} Consultores, Lda.',
  'Grupo {name}, S.A.',
  '{name} Tecnologias, S.A.',
] as const;

/**
 * European Portuguese: the Brazilian book with Portugal's words ("Olá", "cão", "reformada",
 * "a estudar", "contabilista"), schools, universities and company suffixes ("Lda.").
 */
const ptPT: Phrasebook = {
  ...pt,
  occupations: {
    ...pt.occupations,
    developer: { f: 'Programadora', m: 'Programador' },
    accountant: { f: 'Contabilista', m: 'Contabilista' },
    marketing: { f: 'Gestora de marketing', m: 'Gestor de marketing' },
    sales: { f: 'Comercial', m: 'Comercial' },
    mechanic: { f: 'Mecânica de automóveis', m: 'Mecânico de automóveis' },
  },
  studies: {
    ...pt.studies,
    teacher: 'Educação Básica',
    developer: 'Engenharia Informática',
    accountant: 'Contabilidade',
    sales: 'Gestão',
    architect: 'Arquitetura',
    mechanic: 'Mecânica Automóvel',
    barista: 'Restauração e Bebidas',
  },
  retired: { f: '{job} reformada', m: '{job} reformado' },
  studying: 'A estudar {study} na {school}.',
  places: {
    hospital: ['Hospital de {city}', 'Centro de Saúde de {city}', 'Clínica {name}'],
    school: ['Escola Secundária de {city}', 'Escola Básica de {city}', 'Agrupamento de Escolas de {city}'],
    restaurant: ['Restaurante {name}', 'Tasca do {name}', 'Marisqueira de {city}'],
    cafe: ['Pastelaria {name}', 'Café Central de {city}'],
    shop: ['Loja {name}', 'Armazéns {name}'],
    pharmacy: ['Farmácia {name}', 'Farmácia Central de {city}'],
    studio: ['Estúdio {name}', 'Atelier {name}'],
    workshop: ['Oficina {name}', 'Auto Reparadora de {city}'],
  },
  companies: PORTUGUESE_COMPANIES,
  ownCompanies: true,
  universities: ['Universidade de {city}', 'Instituto Politécnico de {city}', 'Universidade Nova de {city}'],
  vocational: ['Escola Profissional de {city}', 'Centro de Formação Profissional de {city}'],
  hobbies: [
    'caminhadas',
    'cozinhar',
    'fotografia',
    'ioga',
    'leitura',
    'jardinagem',
    'corrida',
    'jogos de tabuleiro',
    'ciclismo',
    'pintura',
    'música ao vivo',
    'pastelaria',
    'viajar',
    'natação',
    'pesca',
    'xadrez',
  ],
  mottos: ['Um dia de cada vez', 'Primeiro o café', 'Menos pressa, mais praia', 'Devagar se vai ao longe'],
  bios: {
    ...pt.bios,
    facebook: [
      {
        f: 'Olá, sou a {first}! {role}, em {city}. {studied} Nos tempos livres: {h1} e {h2}.',
        m: 'Olá, sou o {first}! {role}, em {city}. {studied} Nos tempos livres: {h1} e {h2}.',
      },
      '{role}. Nasci em {prevCity} e hoje vivo em {city}, {state}. Feliz com {h1}, {h2} e bons amigos.',
      {
        f: '{job} apaixonada por {h1}. Vivo em {city}, {state}. Sempre pronta para {h2}.',
        m: '{job} apaixonado por {h1}. Vivo em {city}, {state}. Sempre pronto para {h2}.',
      },
      { f: 'Olá, sou a {first}! {role}. Adoro {h1}.', m: 'Olá, sou o {first}! {role}. Adoro {h1}.' },
    ],
  },
  about: {
    ...pt.about,
    origin: [
      'Cresceu em {prevCity}, {prevState}, e vive em {city}, {state}, há {years} anos.',
      '{first} é de {prevCity} e vive em {city} há {years} anos.',
    ],
    retired: [
      {
        f: 'Reformada depois de muitos anos como {jobLower} em {workplace}.',
        m: 'Reformado depois de muitos anos como {jobLower} em {workplace}.',
      },
    ],
    hobbies: ['Nos tempos livres gosta de {h1}, {h2} e {h3}.'],
    trait: [
      'Nunca recusa um café com os amigos.',
      'Coleciona postais de cada cidade que visita.',
      'Não resiste a um cão na rua.',
      'Tem sempre uma playlist pronta para qualquer ocasião.',
    ],
  },
};

const ja: Phrasebook = {
  id: 'ja',
  occupations: {
    nurse: '看護師',
    teacher: '教師',
    developer: 'ソフトウェアエンジニア',
    accountant: '会計士',
    designer: 'グラフィックデザイナー',
    electrician: '電気工事士',
    marketing: 'マーケティングマネージャー',
    pharmacist: '薬剤師',
    chef: '料理人',
    sales: '販売員',
    engineer: '土木技師',
    physio: '理学療法士',
    journalist: '記者',
    architect: '建築士',
    mechanic: '自動車整備士',
    doctor: '医師',
    lawyer: '弁護士',
    barista: 'バリスタ',
    photographer: 'フォトグラファー',
  },
  studies: {
    nurse: '看護学',
    teacher: '教育学',
    developer: '情報科学',
    accountant: '会計学',
    designer: 'グラフィックデザイン',
    electrician: '電気工学',
    marketing: 'マーケティング',
    pharmacist: '薬学',
    chef: '調理',
    sales: '経営学',
    engineer: '土木工学',
    physio: '理学療法',
    journalist: 'ジャーナリズム',
    architect: '建築学',
    mechanic: '自動車工学',
    doctor: '医学',
    lawyer: '法学',
    barista: 'ホスピタリティ',
    photographer: '写真',
  },
  student: '大学生',
  retired: '元{job}',
  roleAt: '{workplace}勤務の{job}',
  studentAt: '{school}の学生',
  studied: '{school}で{study}を学びました。',
  studying: '{school}で{study}を専攻中。',
  studiedAbout: '{school}で{study}を学んだ。',
  places: {
    hospital: ['{city}総合病院', '{name}クリニック'],
    school: ['{city}立第一中学校', '{city}立小学校'],
    restaurant: ['レストラン{name}', '{name}食堂'],
    cafe: ['カフェ{name}', '{city}珈琲店'],
    shop: ['{name}商店', '{city}百貨店'],
    pharmacy: ['{name}薬局', '{city}中央薬局'],
    studio: ['{name}写真館', 'スタジオ{name}'],
    workshop: ['{name}自動車', '{city}オートサービス'],
  },
  universities: ['{city}大学', '{state}立大学', '{city}工業大学'],
  vocational: ['{city}専門学校', '{state}立職業能力開発校'],
  hobbies: [
    '登山',
    '料理',
    '写真',
    'ヨガ',
    '読書',
    'ガーデニング',
    'ランニング',
    'ボードゲーム',
    'サイクリング',
    '絵を描くこと',
    'ライブ',
    'お菓子作り',
    '旅行',
    '水泳',
    '釣り',
    '将棋',
  ],
  mottos: ['一日一歩', '今日も楽しく', '好きなことを好きなだけ', 'コーヒーが原動力'],
  bios: {
    x: [
      '{role}｜{h1}｜{h2}｜{city}在住',
      '{city}在住の{job}。{h1}と{h2}が好き。発言は個人の見解です。',
      '平日は{job}、休日は{h1}。',
      '{city}｜{h1}｜{job}',
    ],
    instagram: [
      '{e1} {role}\n{e2} {h1} & {h2}\n📍 {city}',
      '{motto} {e1}\n{job} • {h1} • {h2}',
      '📍 {city}\n{e1} {h1} | {e2} {h2}\n{motto}',
      '{e1} {job}\n📍 {city}',
    ],
    tiktok: ['{h1}と{h2}の日常 {e1}', '{city}｜{h1} {e1}', '{job}の休日 {e1}{e2}', '{h1} {e1}'],
    facebook: [
      '{first}です。{role}として働いています。{studied}休日は{h1}や{h2}を楽しんでいます。',
      '{prevCity}出身、{city}在住。{role}。{h1}と{h2}が好きです。',
      '{job}として働きながら、{h1}を楽しむ毎日。{state}{city}在住。',
      '{first}です。{role}。{h1}が好きです。',
    ],
  },
  about: {
    origin: ['{prevState}{prevCity}出身。{years}年前から{state}{city}に住んでいる。'],
    work: ['{workplace}で{job}として働いている。'],
    student: ['{school}で{study}を学んでいる。'],
    retired: ['長年{workplace}で{job}として働き、現在は退職している。'],
    hobbies: ['趣味は{h1}、{h2}、{h3}。'],
    trait: [
      '友人の間では旅行の計画係として知られている。',
      '毎朝のコーヒーが欠かせない。',
      '訪れた街の絵はがきを集めている。',
      '道で犬を見かけると必ず立ち止まる。',
    ],
  },
};

const ar: Phrasebook = {
  id: 'ar',
  occupations: {
    nurse: { f: 'ممرضة', m: 'ممرض' },
    teacher: { f: 'معلمة', m: 'معلم' },
    developer: { f: 'مطورة برمجيات', m: 'مطور برمجيات' },
    accountant: { f: 'محاسبة', m: 'محاسب' },
    designer: { f: 'مصممة جرافيك', m: 'مصمم جرافيك' },
    electrician: { f: 'فنية كهرباء', m: 'فني كهرباء' },
    marketing: { f: 'مديرة تسويق', m: 'مدير تسويق' },
    pharmacist: { f: 'صيدلانية', m: 'صيدلاني' },
    chef: { f: 'طاهية', m: 'طباخ' },
    sales: { f: 'مندوبة مبيعات', m: 'مندوب مبيعات' },
    engineer: { f: 'مهندسة مدنية', m: 'مهندس مدني' },
    physio: { f: 'أخصائية علاج طبيعي', m: 'أخصائي علاج طبيعي' },
    journalist: { f: 'صحفية', m: 'صحفي' },
    architect: { f: 'مهندسة معمارية', m: 'مهندس معماري' },
    mechanic: { f: 'ميكانيكية سيارات', m: 'ميكانيكي سيارات' },
    doctor: { f: 'طبيبة', m: 'طبيب' },
    lawyer: { f: 'محامية', m: 'محامي' },
    barista: 'باريستا',
    photographer: { f: 'مصورة', m: 'مصور' },
  },
  studies: {
    nurse: 'التمريض',
    teacher: 'التربية',
    developer: 'علوم الحاسوب',
    accountant: 'المحاسبة',
    designer: 'التصميم الجرافيكي',
    electrician: 'الهندسة الكهربائية',
    marketing: 'التسويق',
    pharmacist: 'الصيدلة',
    chef: 'فنون الطهي',
    sales: 'إدارة الأعمال',
    engineer: 'الهندسة المدنية',
    physio: 'العلاج الطبيعي',
    journalist: 'الصحافة',
    architect: 'العمارة',
    mechanic: 'ميكانيكا السيارات',
    doctor: 'الطب',
    lawyer: 'القانون',
    barista: 'الضيافة',
    photographer: 'التصوير',
  },
  student: { f: 'طالبة جامعية', m: 'طالب جامعي' },
  retired: { f: '{job} متقاعدة', m: '{job} متقاعد' },
  roleAt: '{job} في {workplace}',
  studentAt: '{job} في {school}',
  studied: 'درست {study} في {school}.',
  studying: 'أدرس {study} في {school}.',
  studiedAbout: { f: 'درست {study} في {school}.', m: 'درس {study} في {school}.' },
  places: {
    hospital: ['مستشفى {city} العام', 'عيادة {name}'],
    school: ['مدرسة {city} الثانوية', 'مدرسة {name} الابتدائية'],
    restaurant: ['مطعم {name}', 'مطعم {city}'],
    cafe: ['مقهى {name}', 'مقهى {city}'],
    shop: ['متجر {name}', 'أسواق {city}'],
    pharmacy: ['صيدلية {name}', 'صيدلية {city}'],
    studio: ['استوديو {name}'],
    workshop: ['ورشة {name}', 'مركز {city} لصيانة السيارات'],
  },
  companies: ['شركة {name} للتجارة', 'مجموعة {name}', '{name} وشركاه', 'مؤسسة {name} للخدمات'],
  universities: ['جامعة {city}', 'جامعة {state}'],
  vocational: ['معهد {city} التقني', 'الكلية التقنية في {city}'],
  hobbies: [
    'المشي في الطبيعة',
    'الطبخ',
    'التصوير',
    'اليوغا',
    'القراءة',
    'البستنة',
    'الجري',
    'ألعاب الطاولة',
    'ركوب الدراجات',
    'الرسم',
    'الموسيقى الحية',
    'الخبز',
    'السفر',
    'السباحة',
    'صيد السمك',
    'الشطرنج',
  ],
  mottos: ['خطوة بخطوة', 'الحياة جميلة', 'القهوة أولاً', 'ابتسم دائماً'],
  bios: {
    x: [
      '{role} | {h1} | {h2} | {city}',
      '{job} من {city}. أحب {h1} و{h2} والقهوة.',
      'في النهار {job}، وفي المساء {h1}. الآراء شخصية.',
      '{city} | {h1} | {job}',
    ],
    instagram: [
      '{e1} {role}\n{e2} {h1} & {h2}\n📍 {city}',
      '{motto} {e1}\n{job} • {h1} • {h2}',
      '📍 {city}\n{e1} {h1} | {e2} {h2}\n{motto}',
      '{e1} {job}\n📍 {city}',
    ],
    tiktok: ['{h1} + {h2} {e1}{e2}', '{city} | {h1} {e1}', 'يوميات {job} {e1}', '{h1} {e1}'],
    facebook: [
      'مرحباً، أنا {first}! {role}. {studied} أحب {h1} و{h2}.',
      {
        f: '{role}. نشأت في {prevCity} وأعيش الآن في {city}. سعيدة مع {h1} و{h2} والأصدقاء.',
        m: '{role}. نشأت في {prevCity} وأعيش الآن في {city}. سعيد مع {h1} و{h2} والأصدقاء.',
      },
      { f: '{job} وشغوفة بـ{h1}. أسكن في {city}، {state}.', m: '{job} وشغوف بـ{h1}. أسكن في {city}، {state}.' },
      'مرحباً، أنا {first}! {role}. أحب {h1}.',
    ],
  },
  about: {
    origin: [
      {
        f: 'نشأت في {prevCity}، {prevState}، وتعيش في {city}، {state}، منذ {yearsAr}.',
        m: 'نشأ في {prevCity}، {prevState}، ويعيش في {city}، {state}، منذ {yearsAr}.',
      },
    ],
    work: [{ f: 'تعمل {job} في {workplace}.', m: 'يعمل {job} في {workplace}.' }],
    student: [{ f: 'تدرس {study} في {school}.', m: 'يدرس {study} في {school}.' }],
    retired: [{ f: 'متقاعدة بعد سنوات طويلة في {workplace}.', m: 'متقاعد بعد سنوات طويلة في {workplace}.' }],
    hobbies: [{ f: 'تحب {h1} و{h2} و{h3}.', m: 'يحب {h1} و{h2} و{h3}.' }],
    trait: [
      {
        f: 'معروفة بين أصدقائها بأنها من يخطط لكل رحلة.',
        m: 'معروف بين أصدقائه بأنه من يخطط لكل رحلة.',
      },
      { f: 'لا تبدأ يومها دون قهوة.', m: 'لا يبدأ يومه دون قهوة.' },
      {
        f: 'تجمع البطاقات البريدية من كل مدينة تزورها.',
        m: 'يجمع البطاقات البريدية من كل مدينة يزورها.',
      },
    ],
  },
};

const BOOKS = { en, de, pt, ja, ar } as const;

/**
 * The phrasebook of a bio language: German, Portuguese (Brazil for pt-BR, Portugal for pt, pt-PT
 * and the rest), Japanese and Arabic have their own; others use English.
 */
export function phrasebookFor(code: string): Phrasebook {
  const primary = code.split(/[-_]/)[0]?.toLowerCase() ?? 'en';
  if (primary === 'pt') return /^pt[-_]br$/i.test(code) ? pt : ptPT;
  return (BOOKS as Record<string, Phrasebook>)[primary] ?? en;
}

/** Fills {placeholders}; unknown ones become empty, and doubled spaces collapse. */
export function fill(template: string, vars: Record<string, string>): string {
  return template
    .replace(/\{(\w+)\}/g, (_, name: string) => vars[name] ?? '')
    .replace(/[ \t]{2,}/g, ' ')
    .replace(/ +\n|\n +/g, '\n')
    .replace(/(?<!\.)\.\.(?!\.)/g, '.') // "Lda." at the end of a sentence
    .trim();
}
