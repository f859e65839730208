import type { FakerLocaleName } from './locales.js';
import type { Random } from '@avatargen/core';

/**
 * A small hand-checked gazetteer: real cities with the region (state, province, district,
 * prefecture...) they belong to, for the countries whose faker locales are used most. faker's
 * `location.city()` invents towns ("Schwatloland") and pairs real ones with any region ("Faro,
 * Porto"), so personas of these locales live in cities taken from here instead.
 *
 * Line format: `City (English name; alias, alias) > Region (English name; alias)`. The names in
 * brackets are optional; the first one is the English name, the others are only matched.
 */
interface CountrySource {
  id: string;
  /** The country's language (primary subtag): bios in it use the native names. */
  lang: string;
  /**
   * The country's name per bio language (primary subtag, or a full tag where a variant differs:
   * `pt-BR`), as a persona's current country; languages without one get `en`.
   */
  title: Record<string, string> & { en: string };
  /** Names of the country a description may use (any language). */
  names: string[];
  /** faker locales whose personas live in this country when the description names no place. */
  locales: FakerLocaleName[];
  cities: string;
}

const SOURCES: CountrySource[] = [
  {
    id: 'PT',
    title: {
      en: 'Portugal',
      pt: 'Portugal',
      de: 'Portugal',
      es: 'Portugal',
      fr: 'Portugal',
      it: 'Portogallo',
      nl: 'Portugal',
      pl: 'Portugalia',
      ja: 'ポルトガル',
    },
    lang: 'pt',
    names: ['Portugal'],
    locales: ['pt_PT'],
    cities: `
      Lisboa (Lisbon; Lissabon, Lisbonne) > Lisboa (Lisbon)
      Sintra > Lisboa (Lisbon)
      Cascais > Lisboa (Lisbon)
      Amadora > Lisboa (Lisbon)
      Loures > Lisboa (Lisbon)
      Porto (Porto; Oporto) > Porto
      Vila Nova de Gaia > Porto
      Matosinhos > Porto
      Braga > Braga
      Guimarães > Braga
      Coimbra > Coimbra
      Aveiro > Aveiro
      Faro > Faro
      Portimão > Faro
      Albufeira > Faro
      Setúbal > Setúbal
      Almada > Setúbal
      Évora > Évora
      Leiria > Leiria
      Viseu > Viseu
      Viana do Castelo > Viana do Castelo
      Funchal > Madeira
      Ponta Delgada > Açores (Azores)
    `,
  },
  {
    id: 'BR',
    title: {
      en: 'Brazil',
      pt: 'Brasil',
      de: 'Brasilien',
      es: 'Brasil',
      fr: 'Brésil',
      it: 'Brasile',
      nl: 'Brazilië',
      pl: 'Brazylia',
      ja: 'ブラジル',
    },
    lang: 'pt',
    names: ['Brasil', 'Brazil', 'Brasilien', 'Brésil'],
    locales: ['pt_BR'],
    cities: `
      São Paulo (São Paulo; Sao Paulo) > São Paulo
      Campinas > São Paulo
      Santos > São Paulo
      Rio de Janeiro (Rio de Janeiro; Rio) > Rio de Janeiro
      Niterói > Rio de Janeiro
      Brasília (Brasília; Brasilia) > Distrito Federal (Federal District)
      Salvador > Bahia
      Fortaleza > Ceará
      Belo Horizonte > Minas Gerais
      Manaus > Amazonas
      Curitiba > Paraná
      Recife > Pernambuco
      Porto Alegre > Rio Grande do Sul
      Belém > Pará
      Goiânia > Goiás
      Florianópolis > Santa Catarina
      São Luís > Maranhão
      Maceió > Alagoas
      João Pessoa > Paraíba
    `,
  },
  {
    id: 'ES',
    title: {
      en: 'Spain',
      es: 'España',
      pt: 'Espanha',
      de: 'Spanien',
      fr: 'Espagne',
      it: 'Spagna',
      nl: 'Spanje',
      pl: 'Hiszpania',
      ja: 'スペイン',
    },
    lang: 'es',
    names: ['España', 'Spain', 'Spanien', 'Espanha', 'Espagne'],
    locales: ['es'],
    cities: `
      Madrid > Comunidad de Madrid (Madrid)
      Barcelona > Cataluña (Catalonia; Catalunya, Katalonien)
      Valencia > Comunidad Valenciana (Valencia)
      Alicante > Comunidad Valenciana (Valencia)
      Sevilla (Seville; Sevilha) > Andalucía (Andalusia)
      Málaga (Malaga) > Andalucía (Andalusia)
      Granada > Andalucía (Andalusia)
      Zaragoza > Aragón (Aragon)
      Bilbao > País Vasco (Basque Country)
      San Sebastián (San Sebastián; Donostia) > País Vasco (Basque Country)
      Palma > Islas Baleares (Balearic Islands; Mallorca, Majorca)
      Las Palmas de Gran Canaria > Canarias (Canary Islands)
      Murcia > Región de Murcia (Murcia)
      Valladolid > Castilla y León
      Salamanca > Castilla y León
      Vigo > Galicia
      A Coruña (A Coruña; La Coruña) > Galicia
      Oviedo > Asturias
      Gijón > Asturias
      Pamplona > Navarra (Navarre)
      Santander > Cantabria
    `,
  },
  {
    id: 'MX',
    title: {
      en: 'Mexico',
      es: 'México',
      pt: 'México',
      de: 'Mexiko',
      fr: 'Mexique',
      it: 'Messico',
      nl: 'Mexico',
      pl: 'Meksyk',
      ja: 'メキシコ',
    },
    lang: 'es',
    names: ['México', 'Mexico', 'Mexiko'],
    locales: ['es_MX'],
    cities: `
      Ciudad de México (Mexico City; CDMX) > Ciudad de México (Mexico City)
      Guadalajara > Jalisco
      Monterrey > Nuevo León
      Puebla > Puebla
      Tijuana > Baja California
      Mérida > Yucatán
      Cancún > Quintana Roo
      León > Guanajuato
      Querétaro > Querétaro
      Oaxaca > Oaxaca
    `,
  },
  {
    id: 'FR',
    title: {
      en: 'France',
      fr: 'France',
      de: 'Frankreich',
      pt: 'França',
      es: 'Francia',
      it: 'Francia',
      nl: 'Frankrijk',
      pl: 'Francja',
      ja: 'フランス',
    },
    lang: 'fr',
    names: ['France', 'Frankreich', 'França', 'Francia'],
    locales: ['fr'],
    cities: `
      Paris (Paris; Parigi) > Île-de-France
      Marseille (Marseille; Marseilles) > Provence-Alpes-Côte d'Azur
      Nice > Provence-Alpes-Côte d'Azur
      Toulon > Provence-Alpes-Côte d'Azur
      Lyon (Lyon; Lyons) > Auvergne-Rhône-Alpes
      Grenoble > Auvergne-Rhône-Alpes
      Clermont-Ferrand > Auvergne-Rhône-Alpes
      Toulouse > Occitanie
      Montpellier > Occitanie
      Nantes > Pays de la Loire
      Angers > Pays de la Loire
      Strasbourg > Grand Est
      Reims > Grand Est
      Bordeaux > Nouvelle-Aquitaine
      Lille > Hauts-de-France
      Rennes > Bretagne (Brittany)
      Brest > Bretagne (Brittany)
      Rouen > Normandie (Normandy)
      Le Havre > Normandie (Normandy)
      Dijon > Bourgogne-Franche-Comté
      Tours > Centre-Val de Loire
      Orléans > Centre-Val de Loire
    `,
  },
  {
    id: 'DE',
    title: {
      en: 'Germany',
      de: 'Deutschland',
      pt: 'Alemanha',
      es: 'Alemania',
      fr: 'Allemagne',
      it: 'Germania',
      nl: 'Duitsland',
      pl: 'Niemcy',
      ja: 'ドイツ',
    },
    lang: 'de',
    names: ['Deutschland', 'Germany', 'Alemanha', 'Allemagne', 'Alemania'],
    locales: ['de'],
    cities: `
      Berlin > Berlin
      Hamburg > Hamburg
      Bremen > Bremen
      München (Munich; Muenchen) > Bayern (Bavaria)
      Nürnberg (Nuremberg; Nuernberg) > Bayern (Bavaria)
      Augsburg > Bayern (Bavaria)
      Regensburg > Bayern (Bavaria)
      Köln (Cologne; Koeln) > Nordrhein-Westfalen (North Rhine-Westphalia; NRW)
      Düsseldorf (Düsseldorf; Duesseldorf, Dusseldorf) > Nordrhein-Westfalen (North Rhine-Westphalia; NRW)
      Dortmund > Nordrhein-Westfalen (North Rhine-Westphalia; NRW)
      Essen > Nordrhein-Westfalen (North Rhine-Westphalia; NRW)
      Bonn > Nordrhein-Westfalen (North Rhine-Westphalia; NRW)
      Münster (Münster; Muenster) > Nordrhein-Westfalen (North Rhine-Westphalia; NRW)
      Frankfurt am Main (Frankfurt; Frankfurt am Main) > Hessen (Hesse)
      Wiesbaden > Hessen (Hesse)
      Stuttgart > Baden-Württemberg
      Karlsruhe > Baden-Württemberg
      Mannheim > Baden-Württemberg
      Heidelberg > Baden-Württemberg
      Freiburg im Breisgau (Freiburg; Freiburg im Breisgau) > Baden-Württemberg
      Leipzig > Sachsen (Saxony)
      Dresden > Sachsen (Saxony)
      Hannover (Hanover) > Niedersachsen (Lower Saxony)
      Braunschweig (Brunswick) > Niedersachsen (Lower Saxony)
      Mainz > Rheinland-Pfalz (Rhineland-Palatinate)
      Kiel > Schleswig-Holstein
      Rostock > Mecklenburg-Vorpommern
      Erfurt > Thüringen (Thuringia)
      Potsdam > Brandenburg
      Magdeburg > Sachsen-Anhalt (Saxony-Anhalt)
      Saarbrücken > Saarland
    `,
  },
  {
    id: 'AT',
    title: {
      en: 'Austria',
      de: 'Österreich',
      pt: 'Áustria',
      es: 'Austria',
      fr: 'Autriche',
      it: 'Austria',
      nl: 'Oostenrijk',
      pl: 'Austria',
      ja: 'オーストリア',
    },
    lang: 'de',
    names: ['Österreich', 'Austria', 'Oesterreich'],
    locales: ['de_AT'],
    cities: `
      Wien (Vienna; Viena, Vienne) > Wien (Vienna)
      Graz > Steiermark (Styria)
      Linz > Oberösterreich (Upper Austria)
      Salzburg > Salzburg
      Innsbruck > Tirol (Tyrol)
      Klagenfurt > Kärnten (Carinthia)
    `,
  },
  {
    id: 'CH',
    title: {
      en: 'Switzerland',
      de: 'Schweiz',
      fr: 'Suisse',
      it: 'Svizzera',
      pt: 'Suíça',
      es: 'Suiza',
      nl: 'Zwitserland',
      pl: 'Szwajcaria',
      ja: 'スイス',
    },
    lang: 'de',
    names: ['Schweiz', 'Switzerland', 'Suisse', 'Suíça', 'Suiza', 'Svizzera'],
    locales: ['de_CH', 'fr_CH'],
    cities: `
      Zürich (Zurich; Zuerich) > Zürich (Zurich)
      Genève (Geneva; Genf, Genebra) > Genève (Geneva)
      Basel (Basel; Bâle) > Basel-Stadt
      Bern (Bern; Berne) > Bern
      Lausanne > Vaud
      Luzern (Lucerne) > Luzern (Lucerne)
      Lugano > Ticino
      St. Gallen > St. Gallen
    `,
  },
  {
    id: 'IT',
    title: {
      en: 'Italy',
      it: 'Italia',
      de: 'Italien',
      pt: 'Itália',
      es: 'Italia',
      fr: 'Italie',
      nl: 'Italië',
      pl: 'Włochy',
      ja: 'イタリア',
    },
    lang: 'it',
    names: ['Italia', 'Italy', 'Italien', 'Itália', 'Italie'],
    locales: ['it'],
    cities: `
      Roma (Rome; Rom) > Lazio
      Milano (Milan; Mailand, Milão) > Lombardia (Lombardy)
      Bergamo > Lombardia (Lombardy)
      Brescia > Lombardia (Lombardy)
      Napoli (Naples; Neapel, Nápoles) > Campania
      Torino (Turin) > Piemonte (Piedmont)
      Palermo > Sicilia (Sicily)
      Catania > Sicilia (Sicily)
      Genova (Genoa; Genua) > Liguria
      Bologna > Emilia-Romagna
      Parma > Emilia-Romagna
      Firenze (Florence; Florenz, Florença) > Toscana (Tuscany)
      Pisa > Toscana (Tuscany)
      Bari > Puglia (Apulia)
      Venezia (Venice; Venedig, Veneza) > Veneto
      Verona > Veneto
      Padova (Padua) > Veneto
      Trieste > Friuli-Venezia Giulia
      Cagliari > Sardegna (Sardinia)
    `,
  },
  {
    id: 'GB',
    title: {
      en: 'United Kingdom',
      de: 'Vereinigtes Königreich',
      pt: 'Reino Unido',
      es: 'Reino Unido',
      fr: 'Royaume-Uni',
      it: 'Regno Unito',
      nl: 'Verenigd Koninkrijk',
      pl: 'Wielka Brytania',
      ja: 'イギリス',
    },
    lang: 'en',
    names: ['United Kingdom', 'UK', 'U.K.', 'Great Britain', 'Britain', 'Vereinigtes Königreich', 'Reino Unido', 'Royaume-Uni'],
    locales: ['en_GB'],
    cities: `
      London (London; Londres, Londra) > England (England; Inglaterra)
      Manchester > England (England; Inglaterra)
      Birmingham > England (England; Inglaterra)
      Liverpool > England (England; Inglaterra)
      Leeds > England (England; Inglaterra)
      Sheffield > England (England; Inglaterra)
      Bristol > England (England; Inglaterra)
      Newcastle upon Tyne (Newcastle upon Tyne; Newcastle) > England (England; Inglaterra)
      Nottingham > England (England; Inglaterra)
      Leicester > England (England; Inglaterra)
      Brighton > England (England; Inglaterra)
      Oxford > England (England; Inglaterra)
      Cambridge > England (England; Inglaterra)
      Southampton > England (England; Inglaterra)
      Edinburgh > Scotland (Scotland; Schottland, Escócia, Escocia)
      Glasgow > Scotland (Scotland; Schottland, Escócia, Escocia)
      Aberdeen > Scotland (Scotland; Schottland, Escócia, Escocia)
      Cardiff > Wales
      Swansea > Wales
      Belfast > Northern Ireland (Northern Ireland; Nordirland)
    `,
  },
  {
    id: 'IE',
    title: {
      en: 'Ireland',
      de: 'Irland',
      pt: 'Irlanda',
      es: 'Irlanda',
      fr: 'Irlande',
      it: 'Irlanda',
      nl: 'Ierland',
      pl: 'Irlandia',
      ja: 'アイルランド',
    },
    lang: 'en',
    names: ['Ireland', 'Irland', 'Irlanda', 'Irlande'],
    locales: ['en_IE'],
    cities: `
      Dublin > County Dublin
      Cork > County Cork
      Galway > County Galway
      Limerick > County Limerick
      Waterford > County Waterford
    `,
  },
  {
    id: 'US',
    title: {
      en: 'United States',
      de: 'Vereinigte Staaten',
      pt: 'Estados Unidos',
      es: 'Estados Unidos',
      fr: 'États-Unis',
      it: 'Stati Uniti',
      nl: 'Verenigde Staten',
      pl: 'Stany Zjednoczone',
      ja: 'アメリカ合衆国',
    },
    lang: 'en',
    names: [
      'United States',
      'USA',
      'U.S.A.',
      'U.S.',
      'America',
      'the States',
      'Estados Unidos',
      'EUA',
      'EE. UU.',
      'USA',
      'Vereinigte Staaten',
      'États-Unis',
    ],
    locales: ['en_US', 'en'],
    cities: `
      New York City (New York City; New York, NYC) > New York
      Buffalo > New York
      Albany > New York
      Los Angeles (Los Angeles; L.A.) > California
      San Francisco > California
      San Diego > California
      San Jose > California
      Sacramento > California
      Chicago > Illinois
      Houston > Texas
      San Antonio > Texas
      Dallas > Texas
      Austin > Texas
      Fort Worth > Texas
      El Paso > Texas
      Phoenix > Arizona
      Tucson > Arizona
      Philadelphia > Pennsylvania
      Pittsburgh > Pennsylvania
      Jacksonville > Florida
      Miami > Florida
      Orlando > Florida
      Tampa > Florida
      Seattle > Washington
      Spokane > Washington
      Denver > Colorado
      Boston > Massachusetts
      Atlanta > Georgia
      Nashville > Tennessee
      Memphis > Tennessee
      Portland > Oregon
      Las Vegas > Nevada
      Detroit > Michigan
      Minneapolis > Minnesota
      New Orleans > Louisiana
      Charlotte > North Carolina
      Raleigh > North Carolina
      Columbus > Ohio
      Cleveland > Ohio
      Indianapolis > Indiana
      Milwaukee > Wisconsin
      Baltimore > Maryland
      Kansas City > Missouri
      St. Louis (St. Louis; Saint Louis) > Missouri
      Louisville > Kentucky
      Oklahoma City > Oklahoma
      Albuquerque > New Mexico
      Salt Lake City > Utah
      Boise > Idaho
      Omaha > Nebraska
      Des Moines > Iowa
      Wichita > Kansas
      Little Rock > Arkansas
      Birmingham > Alabama
      Jackson > Mississippi
      Charleston > South Carolina
      Richmond > Virginia
      Virginia Beach > Virginia
      Newark > New Jersey
      Hartford > Connecticut
      Providence > Rhode Island
      Burlington > Vermont
      Manchester > New Hampshire
      Portland > Maine
      Charleston > West Virginia
      Wilmington > Delaware
      Fargo > North Dakota
      Sioux Falls > South Dakota
      Billings > Montana
      Cheyenne > Wyoming
      Anchorage > Alaska
      Honolulu > Hawaii
      Washington, D.C. (Washington, D.C.; Washington DC, Washington D.C.) > District of Columbia (District of Columbia; DC)
    `,
  },
  {
    id: 'CA',
    title: { en: 'Canada', de: 'Kanada', pt: 'Canadá', es: 'Canadá', fr: 'Canada', it: 'Canada', nl: 'Canada', pl: 'Kanada', ja: 'カナダ' },
    lang: 'en',
    names: ['Canada', 'Kanada', 'Canadá'],
    locales: ['en_CA', 'fr_CA'],
    cities: `
      Toronto > Ontario
      Ottawa > Ontario
      Hamilton > Ontario
      Montréal (Montreal) > Québec (Quebec)
      Québec (Quebec City) > Québec (Quebec)
      Vancouver > British Columbia
      Victoria > British Columbia
      Calgary > Alberta
      Edmonton > Alberta
      Winnipeg > Manitoba
      Halifax > Nova Scotia
      Saskatoon > Saskatchewan
    `,
  },
  {
    id: 'AU',
    title: {
      en: 'Australia',
      de: 'Australien',
      pt: 'Austrália',
      es: 'Australia',
      fr: 'Australie',
      it: 'Australia',
      nl: 'Australië',
      pl: 'Australia',
      ja: 'オーストラリア',
    },
    lang: 'en',
    names: ['Australia', 'Australien', 'Austrália', 'Australie'],
    locales: ['en_AU'],
    cities: `
      Sydney > New South Wales
      Newcastle > New South Wales
      Melbourne > Victoria
      Geelong > Victoria
      Brisbane > Queensland
      Gold Coast > Queensland
      Perth > Western Australia
      Adelaide > South Australia
      Canberra > Australian Capital Territory
      Hobart > Tasmania
      Darwin > Northern Territory
    `,
  },
  {
    id: 'NL',
    title: {
      en: 'Netherlands',
      nl: 'Nederland',
      de: 'Niederlande',
      pt: 'Países Baixos',
      es: 'Países Bajos',
      fr: 'Pays-Bas',
      it: 'Paesi Bassi',
      pl: 'Holandia',
      ja: 'オランダ',
    },
    lang: 'nl',
    names: ['Nederland', 'Netherlands', 'the Netherlands', 'Holland', 'Niederlande', 'Países Baixos', 'Pays-Bas'],
    locales: ['nl'],
    cities: `
      Amsterdam > Noord-Holland (North Holland)
      Haarlem > Noord-Holland (North Holland)
      Rotterdam > Zuid-Holland (South Holland)
      Den Haag (The Hague; 's-Gravenhage, Den Haag) > Zuid-Holland (South Holland)
      Leiden > Zuid-Holland (South Holland)
      Delft > Zuid-Holland (South Holland)
      Utrecht > Utrecht
      Eindhoven > Noord-Brabant (North Brabant)
      Tilburg > Noord-Brabant (North Brabant)
      Breda > Noord-Brabant (North Brabant)
      Groningen > Groningen
      Almere > Flevoland
      Nijmegen > Gelderland
      Arnhem > Gelderland
      Maastricht > Limburg
      Zwolle > Overijssel
      Enschede > Overijssel
      Leeuwarden > Friesland
    `,
  },
  {
    id: 'PL',
    title: {
      en: 'Poland',
      pl: 'Polska',
      de: 'Polen',
      pt: 'Polónia',
      'pt-BR': 'Polônia',
      es: 'Polonia',
      fr: 'Pologne',
      it: 'Polonia',
      nl: 'Polen',
      ja: 'ポーランド',
    },
    lang: 'pl',
    names: ['Polska', 'Poland', 'Polen', 'Polónia', 'Polônia', 'Pologne', 'Polonia'],
    locales: ['pl'],
    cities: `
      Warszawa (Warsaw; Warschau, Varsóvia, Varsovie) > mazowieckie (Masovian)
      Kraków (Krakow; Cracow, Krakau, Cracóvia, Cracovie) > małopolskie (Lesser Poland)
      Łódź (Lodz) > łódzkie (Łódź Voivodeship)
      Wrocław (Wroclaw; Breslau) > dolnośląskie (Lower Silesian)
      Poznań (Poznan; Posen) > wielkopolskie (Greater Poland)
      Gdańsk (Gdansk; Danzig) > pomorskie (Pomeranian)
      Gdynia > pomorskie (Pomeranian)
      Szczecin > zachodniopomorskie (West Pomeranian)
      Bydgoszcz > kujawsko-pomorskie (Kuyavian-Pomeranian)
      Lublin > lubelskie (Lublin Voivodeship)
      Białystok (Bialystok) > podlaskie (Podlaskie)
      Katowice > śląskie (Silesian)
      Rzeszów (Rzeszow) > podkarpackie (Subcarpathian)
      Olsztyn > warmińsko-mazurskie (Warmian-Masurian)
      Kielce > świętokrzyskie (Holy Cross)
      Opole > opolskie (Opole Voivodeship)
    `,
  },
  {
    id: 'JP',
    title: { en: 'Japan', ja: '日本', de: 'Japan', pt: 'Japão', es: 'Japón', fr: 'Japon', it: 'Giappone', nl: 'Japan', pl: 'Japonia' },
    lang: 'ja',
    names: ['日本', 'Japan', 'Japão', 'Japon', 'Japón'],
    locales: ['ja'],
    cities: `
      新宿区 (Shinjuku) > 東京都 (Tokyo; 東京, Tóquio, Tokio)
      渋谷区 (Shibuya) > 東京都 (Tokyo; 東京, Tóquio, Tokio)
      世田谷区 (Setagaya) > 東京都 (Tokyo; 東京, Tóquio, Tokio)
      品川区 (Shinagawa) > 東京都 (Tokyo; 東京, Tóquio, Tokio)
      八王子市 (Hachioji) > 東京都 (Tokyo; 東京, Tóquio, Tokio)
      横浜市 (Yokohama; 横浜) > 神奈川県 (Kanagawa; 神奈川)
      川崎市 (Kawasaki; 川崎) > 神奈川県 (Kanagawa; 神奈川)
      大阪市 (Osaka; 大阪) > 大阪府 (Osaka Prefecture)
      堺市 (Sakai; 堺) > 大阪府 (Osaka Prefecture)
      名古屋市 (Nagoya; 名古屋) > 愛知県 (Aichi; 愛知)
      札幌市 (Sapporo; 札幌) > 北海道 (Hokkaido)
      福岡市 (Fukuoka; 福岡) > 福岡県 (Fukuoka Prefecture)
      神戸市 (Kobe; 神戸) > 兵庫県 (Hyogo; 兵庫)
      京都市 (Kyoto; 京都) > 京都府 (Kyoto Prefecture)
      さいたま市 (Saitama; さいたま) > 埼玉県 (Saitama Prefecture)
      千葉市 (Chiba; 千葉) > 千葉県 (Chiba Prefecture)
      広島市 (Hiroshima; 広島) > 広島県 (Hiroshima Prefecture)
      仙台市 (Sendai; 仙台) > 宮城県 (Miyagi; 宮城)
      那覇市 (Naha; 那覇) > 沖縄県 (Okinawa; 沖縄)
      金沢市 (Kanazawa; 金沢) > 石川県 (Ishikawa; 石川)
      新潟市 (Niigata; 新潟) > 新潟県 (Niigata Prefecture)
    `,
  },
];

export interface Region {
  /** Native name, e.g. "Bayern". */
  name: string;
  en: string;
}

export interface City {
  name: string;
  en: string;
  region: Region;
  country: Country;
}

export interface Country {
  id: string;
  lang: string;
  /** The country's name per bio language (see CountrySource.title); `countryName` picks one. */
  title: Record<string, string> & { en: string };
  /** faker locales of the country; the first gives names to people of a place named in a description. */
  locales: FakerLocaleName[];
  cities: City[];
  regions: Region[];
}

/** Where a description places its people: a country, a region of it, or one city. */
export interface PlaceCue {
  country: Country;
  region?: Region;
  city?: City;
  /** The words of the description that named it. */
  matched: string;
  /**
   * Where they come from, when the description names a place after "from" / "originally from" /
   * "aus" besides the place where they live ("from Porto, living in Lisbon"): their previous city.
   */
  origin?: PlaceCue;
}

interface NameEntry {
  name: string;
  country: Country;
  region?: Region;
  city?: City;
}

const LINE = /^(.+?)(?:\s*\(([^)]*)\))?\s*>\s*(.+?)(?:\s*\(([^)]*)\))?$/;

function split(names: string | undefined): [string | undefined, string[]] {
  if (!names) return [undefined, []];
  const [english, ...aliases] = names.split(';');
  return [
    english?.trim(),
    aliases
      .join(',')
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean),
  ];
}

function build(): { countries: Country[]; entries: NameEntry[] } {
  const countries: Country[] = [];
  const entries: NameEntry[] = [];
  for (const source of SOURCES) {
    const country: Country = { id: source.id, lang: source.lang, title: source.title, locales: source.locales, cities: [], regions: [] };
    countries.push(country);
    for (const name of source.names) entries.push({ name, country });
    for (const line of source.cities
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)) {
      const m = LINE.exec(line);
      if (!m) throw new Error(`bad gazetteer line: ${line}`);
      const [cityEn, cityAliases] = split(m[2]);
      const [regionEn, regionAliases] = split(m[4]);
      const regionName = (m[3] as string).trim();
      let region = country.regions.find((r) => r.name === regionName);
      if (!region) {
        region = { name: regionName, en: regionEn ?? regionName };
        country.regions.push(region);
        for (const name of new Set([regionName, region.en, ...regionAliases])) entries.push({ name, country, region });
      }
      const cityName = (m[1] as string).trim();
      const city: City = { name: cityName, en: cityEn ?? cityName, region, country };
      country.cities.push(city);
      for (const name of new Set([cityName, city.en, ...cityAliases])) entries.push({ name, country, region, city });
    }
  }
  return { countries, entries };
}

const { countries: COUNTRIES, entries: ENTRIES } = build();

export { COUNTRIES };

/** Names that are also common words: they count only when written with a capital ("in Nice", not "in nice clothes"). */
const CAPITALISED_ONLY = new Set(['Nice', 'Tours', 'Jackson', 'Victoria', 'Essen', 'Providence', 'Buffalo', 'Reading', 'Salvador']);

/** Words before a place name, in the bio languages with phrasebooks and the countries above. */
const BEFORE =
  'in|from|based in|living in|lives in|live in|around|near|aus|im|in der|bei|em|no|na|nos|nas|de|do|da|en|à|a|au|aux|di|z|w|we|uit|van';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const cjk = /[\u3040-\u30ff\u4e00-\u9fff]/;

// Longest names first, so "Porto Alegre" wins over "Porto" and "New York City" over "New York".
const sorted = [...ENTRIES].sort((a, b) => b.name.length - a.name.length);
const byName = new Map<string, NameEntry>();
for (const entry of sorted) {
  const key = entry.name.toLowerCase();
  // the first entry of a name wins: a city before the region of the same name comes from its line order
  const existing = byName.get(key);
  if (!existing || (entry.city && !existing.city)) byName.set(key, entry);
}
const latinNames = sorted.filter((e) => !cjk.test(e.name)).map((e) => escapeRegExp(e.name));
const PLACE = new RegExp(`(?<![\\p{L}\\p{N}])(${BEFORE})\\s+(?:the\\s+)?(${[...new Set(latinNames)].join('|')})(?![\\p{L}\\p{N}])`, 'giu');
const CJK_PLACE = new RegExp(`(${[...new Set(sorted.filter((e) => cjk.test(e.name)).map((e) => escapeRegExp(e.name)))].join('|')})`, 'gu');

/**
 * The place a description names after "in", "from", "based in" (and their German, Portuguese,
 * Spanish, French, Italian, Dutch and Polish equivalents): a city, a region or a country of the
 * gazetteer, case-insensitively; Japanese names anywhere. The first place named wins.
 */
export function readPlace(description: string): PlaceCue | undefined {
  const found: Array<{ index: number; entry: NameEntry; matched: string; from: boolean }> = [];
  for (const m of description.matchAll(PLACE)) {
    const matched = m[2] as string;
    const entry = byName.get(matched.toLowerCase());
    if (!entry) continue;
    if (CAPITALISED_ONLY.has(entry.name) && matched[0] !== matched[0]?.toUpperCase()) continue;
    found.push({ index: m.index ?? 0, entry, matched, from: /^(?:from|aus)$/i.test(m[1] as string) });
  }
  for (const m of description.matchAll(CJK_PLACE)) {
    const entry = byName.get((m[1] as string).toLowerCase());
    if (entry) found.push({ index: m.index ?? 0, entry, matched: m[1] as string, from: false });
  }
  found.sort((a, b) => a.index - b.index);
  // "from X" alone says where people live ("designers from Porto"); next to another place it is their origin.
  const home = found.find((f) => !f.from) ?? found[0];
  if (!home) return undefined;
  const origin = found.find((f) => f.from && f !== home && f.entry.name !== home.entry.name);
  const cue = (f: (typeof found)[number]): PlaceCue => ({
    country: f.entry.country,
    region: f.entry.region,
    city: f.entry.city,
    matched: f.matched,
  });
  return { ...cue(home), origin: origin ? cue(origin) : undefined };
}

/** The country whose cities a locale's personas live in when the description names no place. */
export function countryForLocale(locale: FakerLocaleName): Country | undefined {
  const source = SOURCES.find((s) => s.locales.includes(locale));
  return source ? COUNTRIES.find((c) => c.id === source.id) : undefined;
}

/** A city or region name as written in a bio language: native in the country's own language (or Latin script), else English. */
export function placeName(place: { name: string; en: string }, country: Country, languageCode: string): string {
  const lang = languageCode.split(/[-_]/)[0]?.toLowerCase() ?? 'en';
  if (lang === country.lang) return place.name;
  if (lang === 'en' || cjk.test(place.name)) return place.en;
  return place.name;
}

export interface Home {
  city: City;
  prev: City;
}

/**
 * Where a persona lives and lived: the named city itself, or a city of the named region or
 * country (or of the locale's country); the previous city is another one, often in the same region.
 */
export function pickHome(r: Random, cue: PlaceCue | undefined, country: Country): Home {
  const pool = cue?.city ? [cue.city] : cue?.region ? country.cities.filter((c) => c.region === cue.region) : country.cities;
  const city = r.pick(pool);
  // by name: the US has two Portlands and two Charlestons
  const sameRegion = country.cities.filter((c) => c.region === city.region && c.name !== city.name);
  const others = country.cities.filter((c) => c.name !== city.name);
  const origin = cue?.origin;
  const originPool = origin?.city
    ? [origin.city]
    : origin?.region
      ? origin.country.cities.filter((c) => c.region === origin.region)
      : origin?.country.cities;
  const fromOrigin = originPool?.filter((c) => c.name !== city.name) ?? [];
  const prev =
    fromOrigin.length > 0
      ? r.pick(fromOrigin)
      : sameRegion.length > 0 && r.chance(0.4)
        ? r.pick(sameRegion)
        : r.pick(others.length > 0 ? others : [city]);
  return { city, prev };
}

/** A country's name in a bio language: its own where the gazetteer has one (`Deutschland`, `Alemanha`), else English. */
export function countryName(country: Country, languageCode: string): string {
  const tag = languageCode.replace(/_/g, '-').toLowerCase();
  const lang = tag.split('-')[0] ?? 'en';
  const titles = Object.entries(country.title);
  return (
    titles.find(([key]) => key.toLowerCase() === tag)?.[1] ?? titles.find(([key]) => key.toLowerCase() === lang)?.[1] ?? country.title.en
  );
}

/** A name as a location target is compared: words only, case and accents aside ("São Paulo" = "sao paulo"). */
const foldWords = (text: string) =>
  text
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean)
    .join(' ');

// Every name of every city, region and country, the countries' names in each bio language too
// ("Alemanha", "Niemcy"). Kept apart from readPlace's names so descriptions read as before.
const LOCATION_INDEX = new Map<string, NameEntry[]>();
for (const entry of [
  ...ENTRIES,
  ...COUNTRIES.flatMap((country) => Object.values(country.title).map((name): NameEntry => ({ name, country }))),
]) {
  const key = foldWords(entry.name);
  if (!key) continue;
  const list = LOCATION_INDEX.get(key) ?? [];
  if (!list.some((e) => e.country === entry.country && e.region === entry.region && e.city === entry.city)) list.push(entry);
  LOCATION_INDEX.set(key, list);
}

export type PlaceLevel = 'city' | 'region' | 'country';

/** A location target found in the gazetteer: the place, and what each comma-separated part of the text named. */
export interface LocationTarget {
  country: Country;
  region?: Region;
  city?: City;
  parts: Array<{ text: string; level: PlaceLevel }>;
}

const levelOf = (e: NameEntry): PlaceLevel => (e.city ? 'city' : e.region ? 'region' : 'country');
const RANK: Record<PlaceLevel, number> = { city: 0, region: 1, country: 2 };

/** Whether `outer` (a country, region or city) holds `inner`. */
const holds = (outer: NameEntry, inner: NameEntry) =>
  outer.country === inner.country && (!outer.region || outer.region === inner.region) && (!outer.city || outer.city === inner.city);

/**
 * A location target (`Lisbon`, `Porto, Portugal`, `Bavaria`, `Deutschland`) as a gazetteer place,
 * or undefined when a part is not in the gazetteer or the parts do not fit together (`Porto,
 * Germany`). The most specific place that every part holds wins; among names of several places
 * (two Portlands, Birmingham in England and Alabama) those of `prefer` first, then the gazetteer's order.
 */
export function resolveLocation(text: string, prefer?: Country): LocationTarget | undefined {
  const whole = LOCATION_INDEX.get(foldWords(text));
  const split = text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  // a name with a comma of its own ("Washington, D.C.") is one part
  const parts = whole && split.length > 1 ? [text.trim()] : split;
  if (parts.length === 0) return undefined;
  const order = (list: NameEntry[]) =>
    [...list].sort((a, b) => RANK[levelOf(a)] - RANK[levelOf(b)] || Number(b.country === prefer) - Number(a.country === prefer));
  const candidates = parts.map((p) => order(LOCATION_INDEX.get(foldWords(p)) ?? []));
  if (candidates.some((c) => c.length === 0)) return undefined;
  let best: { entry: NameEntry; named: NameEntry[] } | undefined;
  for (const entry of candidates.flat()) {
    const named = candidates.map((list) => list.find((e) => holds(e, entry)));
    if (named.some((e) => !e)) continue;
    if (!best || RANK[levelOf(entry)] < RANK[levelOf(best.entry)]) best = { entry, named: named as NameEntry[] };
  }
  if (!best) return undefined;
  const { entry, named } = best;
  return {
    country: entry.country,
    region: entry.region,
    city: entry.city,
    parts: parts.map((p, i) => ({ text: p, level: levelOf(named[i] as NameEntry) })),
  };
}

/** The level a single name has in the gazetteer (a country before a region before a city), if any. */
export function levelOfName(text: string): PlaceLevel | undefined {
  const list = LOCATION_INDEX.get(foldWords(text));
  if (!list || list.length === 0) return undefined;
  return list.map(levelOf).sort((a, b) => RANK[b] - RANK[a])[0];
}
