/** Jobs the offline provider knows, with what people in them studied and where they work. */
export const OCCUPATIONS = [
  'nurse',
  'teacher',
  'developer',
  'accountant',
  'designer',
  'electrician',
  'marketing',
  'pharmacist',
  'chef',
  'sales',
  'engineer',
  'physio',
  'journalist',
  'architect',
  'mechanic',
  'doctor',
  'lawyer',
  'barista',
  'photographer',
] as const;
export type Occupation = (typeof OCCUPATIONS)[number];

export type PlaceKind = 'hospital' | 'school' | 'company' | 'restaurant' | 'cafe' | 'shop' | 'pharmacy' | 'studio' | 'workshop';

export interface OccupationInfo {
  place: PlaceKind;
  /** University degree, or vocational training. */
  education: 'university' | 'vocational';
  /** Words in a description that ask for this job (several languages; matched on lower case). */
  cue: RegExp;
}

export const OCCUPATION_INFO: Record<Occupation, OccupationInfo> = {
  nurse: { place: 'hospital', education: 'university', cue: /nurs|krankenpfleg|pflegefach|enfermeir|看護|ممرض/ },
  teacher: { place: 'school', education: 'university', cue: /teach|educator|lehrer|professor|教師|教員|معلم|مدرس/ },
  developer: {
    place: 'company',
    education: 'university',
    cue: /develop|programmer|software|coder|entwickler|desenvolvedor|プログラマ|مطور|مبرمج/,
  },
  accountant: { place: 'company', education: 'university', cue: /accountant|bookkeep|buchhalt|contador|会計|محاسب/ },
  designer: { place: 'company', education: 'university', cue: /designer|grafik|デザイナー|مصمم/ },
  electrician: { place: 'company', education: 'vocational', cue: /electrician|elektriker|eletricista|電気工|كهربائي/ },
  marketing: { place: 'company', education: 'university', cue: /marketing|marketer|マーケ|تسويق/ },
  pharmacist: { place: 'pharmacy', education: 'university', cue: /pharmacist|apothek|farmacêut|薬剤師|صيدل/ },
  chef: { place: 'restaurant', education: 'vocational', cue: /\bchefs?\b|\bcooks?\b|köchin|\bkoch\b|cozinh|料理人|طاه|طباخ/ },
  sales: { place: 'shop', education: 'university', cue: /\bsales|retail|cashier|verkäuf|vendedor|販売|مبيعات/ },
  engineer: { place: 'company', education: 'university', cue: /engineer|ingenieur|engenheir|技師|مهندس/ },
  physio: { place: 'hospital', education: 'university', cue: /physio|fisioter|理学療法|علاج طبيعي/ },
  journalist: { place: 'company', education: 'university', cue: /journalis|reporter|jornalist|記者|صحف/ },
  architect: { place: 'company', education: 'university', cue: /architect|arquitet|建築|معماري/ },
  mechanic: { place: 'workshop', education: 'vocational', cue: /mechanic|mechatron|mecânic|整備|ميكانيك/ },
  doctor: { place: 'hospital', education: 'university', cue: /doctor|physician|\barzt|ärzt|médic|医師|طبيب/ },
  lawyer: { place: 'company', education: 'university', cue: /lawyer|attorney|anwalt|anwält|advogad|弁護士|محام/ },
  barista: { place: 'cafe', education: 'vocational', cue: /barista|coffee shop|バリスタ|باريستا/ },
  photographer: { place: 'studio', education: 'university', cue: /photographer|fotograf|fotógraf|写真家|カメラマン|مصور/ },
};

export const STUDENT_CUE = /student|studierende|estudante|universitári|学生|طالب|طلاب|undergrad|college kids/;
export const RETIRED_CUE = /retire|pensioner|rentner|ruhestand|aposentad|退職|定年|متقاعد|senior citizens|elderly/;
